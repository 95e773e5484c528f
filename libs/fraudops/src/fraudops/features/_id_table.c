/*
 * IdTable: recent transaction ids -> (terminal key, time), for the online feature store.
 *
 * The store asks about every payment twice (has it been applied? then: remember it) and forgets it a few
 * weeks later. With a dict of about half a million strings each of those cost one or two cache misses plus
 * interpreter work, and a Python loop to forget: about 0.75 us a payment, a quarter of the features' time.
 * Here a slot holds the id's hash, terminal key and time inline (one cache line read per question), and
 * forgetting is one pass over the slots.
 *
 * Open addressing, linear probing. A slot is empty (id NULL), used, or a tombstone left by forgetting
 * (id TOMBSTONE), which lookups step over and inserts reuse. The table keeps a reference to each id: the hash
 * (Python's own, cached on the str) only finds candidates, and the id itself decides, so two ids of equal
 * hash never pass for each other. A str references nothing, so the table needs no cycle collection.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef struct {
    Py_hash_t hash;
    PyObject *id; /* NULL: empty; TOMBSTONE: forgotten */
    int64_t key;
    int64_t time;
} Slot;

static PyObject tombstone_marker;
#define TOMBSTONE (&tombstone_marker)
#define MIN_CAPACITY 1024

typedef struct {
    PyObject_HEAD
    Slot *slots;
    Py_ssize_t capacity; /* a power of two */
    Py_ssize_t used;
    Py_ssize_t tombstones;
} IdTable;

static int same_id(const Slot *slot, PyObject *id, Py_hash_t hash) {
    if (slot->hash != hash) return 0;
    if (slot->id == id) return 1;
    return PyUnicode_Compare(slot->id, id) == 0; /* both str: no error possible */
}

/* The slot holding `id`, or NULL; *insert_at (when asked) gets where a new id would go: the first tombstone
 * on the way, else the empty slot that ended the search. */
static Slot *lookup(IdTable *table, PyObject *id, Py_hash_t hash, Slot **insert_at) {
    size_t mask = (size_t)table->capacity - 1;
    size_t index = (size_t)hash & mask;
    Slot *reusable = NULL;
    for (;;) {
        Slot *slot = &table->slots[index];
        if (slot->id == NULL) {
            if (insert_at != NULL) *insert_at = reusable != NULL ? reusable : slot;
            return NULL;
        }
        if (slot->id == TOMBSTONE) {
            if (reusable == NULL) reusable = slot;
        } else if (same_id(slot, id, hash)) {
            return slot;
        }
        index = (index + 1) & mask;
    }
}

/* Re-lays the used slots into a table of `capacity` slots (tombstones dropped). */
static int relayout(IdTable *table, Py_ssize_t capacity) {
    Slot *fresh = PyMem_Calloc((size_t)capacity, sizeof(Slot));
    if (fresh == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = (size_t)capacity - 1;
    for (Py_ssize_t i = 0; i < table->capacity; i++) {
        Slot *slot = &table->slots[i];
        if (slot->id == NULL || slot->id == TOMBSTONE) continue;
        size_t index = (size_t)slot->hash & mask;
        while (fresh[index].id != NULL) index = (index + 1) & mask;
        fresh[index] = *slot;
    }
    PyMem_Free(table->slots);
    table->slots = fresh;
    table->capacity = capacity;
    table->tombstones = 0;
    return 0;
}

/* Room for `more` ids with the table at most half full (tombstones count: they lengthen searches). */
static int reserve(IdTable *table, Py_ssize_t more) {
    Py_ssize_t needed = table->used + more;
    if ((needed + table->tombstones) * 2 <= table->capacity) return 0;
    Py_ssize_t capacity = MIN_CAPACITY;
    while (capacity < needed * 4) capacity *= 2; /* a quarter full after growing */
    return relayout(table, capacity);
}

static PyObject *id_table_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "IdTable() takes no arguments");
        return NULL;
    }
    IdTable *table = (IdTable *)type->tp_alloc(type, 0);
    if (table == NULL) return NULL;
    table->slots = PyMem_Calloc(MIN_CAPACITY, sizeof(Slot));
    if (table->slots == NULL) {
        Py_DECREF(table);
        return PyErr_NoMemory();
    }
    table->capacity = MIN_CAPACITY;
    return (PyObject *)table;
}

static void id_table_dealloc(IdTable *table) {
    if (table->slots != NULL) {
        for (Py_ssize_t i = 0; i < table->capacity; i++) {
            PyObject *id = table->slots[i].id;
            if (id != NULL && id != TOMBSTONE) Py_DECREF(id);
        }
        PyMem_Free(table->slots);
    }
    Py_TYPE(table)->tp_free((PyObject *)table);
}

/* The str at `index` of a fast sequence and its hash; 0 with an exception set when it is not a str. */
static int id_at(PyObject *sequence, Py_ssize_t index, PyObject **id, Py_hash_t *hash) {
    *id = PySequence_Fast_GET_ITEM(sequence, index);
    if (!PyUnicode_Check(*id)) {
        PyErr_SetString(PyExc_TypeError, "transaction ids must be str");
        return 0;
    }
    *hash = PyObject_Hash(*id);
    return *hash != -1 || !PyErr_Occurred();
}

PyDoc_STRVAR(find_doc,
"find(ids, /)\n--\n\n"
"The rows of `ids` that are in the table, and the terminal key each was added with last: (rows, keys).");

static PyObject *id_table_find(IdTable *table, PyObject *ids) {
    PyObject *sequence = PySequence_Fast(ids, "ids must be a sequence");
    if (sequence == NULL) return NULL;
    PyObject *rows = PyList_New(0), *keys = PyList_New(0), *result = NULL;
    if (rows == NULL || keys == NULL) goto done;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
    for (Py_ssize_t row = 0; row < count; row++) {
        PyObject *id;
        Py_hash_t hash;
        if (!id_at(sequence, row, &id, &hash)) goto done;
        Slot *slot = lookup(table, id, hash, NULL);
        if (slot == NULL) continue;
        PyObject *position = PyLong_FromSsize_t(row), *key = PyLong_FromLongLong(slot->key);
        int failed = position == NULL || key == NULL || PyList_Append(rows, position) || PyList_Append(keys, key);
        Py_XDECREF(position);
        Py_XDECREF(key);
        if (failed) goto done;
    }
    result = PyTuple_Pack(2, rows, keys);
done:
    Py_XDECREF(rows);
    Py_XDECREF(keys);
    Py_DECREF(sequence);
    return result;
}

PyDoc_STRVAR(add_doc,
"add(ids, keys, times, /)\n--\n\n"
"Remembers each id with its terminal key and time (int64 buffers); an id added again keeps the key added\n"
"last and the latest time.");

static PyObject *id_table_add(IdTable *table, PyObject *args) {
    PyObject *ids;
    Py_buffer keys, times;
    if (!PyArg_ParseTuple(args, "Oy*y*:add", &ids, &keys, &times)) return NULL;
    PyObject *result = NULL;
    PyObject *sequence = PySequence_Fast(ids, "ids must be a sequence");
    if (sequence == NULL) goto done;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
    if (keys.len != count * 8 || times.len != count * 8) {
        PyErr_SetString(PyExc_ValueError, "one key and one time per id");
        goto done;
    }
    if (reserve(table, count) < 0) goto done;
    const int64_t *key = keys.buf, *time = times.buf;
    for (Py_ssize_t row = 0; row < count; row++) {
        PyObject *id;
        Py_hash_t hash;
        Slot *slot, *free_slot;
        if (!id_at(sequence, row, &id, &hash)) goto done;
        if ((slot = lookup(table, id, hash, &free_slot)) != NULL) {
            slot->key = key[row];
            if (time[row] > slot->time) slot->time = time[row];
            continue;
        }
        if (free_slot->id == TOMBSTONE) table->tombstones--;
        Py_INCREF(id);
        *free_slot = (Slot){hash, id, key[row], time[row]};
        table->used++;
    }
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(sequence);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&times);
    return result;
}

PyDoc_STRVAR(forget_doc,
"forget(horizon, /)\n--\n\n"
"Drops the ids whose latest time is at or before `horizon`; returns how many.");

static PyObject *id_table_forget(IdTable *table, PyObject *argument) {
    long long horizon = PyLong_AsLongLong(argument);
    if (horizon == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t dropped = 0;
    for (Py_ssize_t i = 0; i < table->capacity; i++) {
        Slot *slot = &table->slots[i];
        if (slot->id == NULL || slot->id == TOMBSTONE || slot->time > horizon) continue;
        Py_DECREF(slot->id);
        slot->id = TOMBSTONE;
        dropped++;
    }
    table->used -= dropped;
    table->tombstones += dropped;
    /* Many tombstones lengthen every search: lay the table out again, smaller when it emptied. */
    if (table->tombstones * 8 > table->capacity) {
        Py_ssize_t capacity = MIN_CAPACITY;
        while (capacity < table->used * 4) capacity *= 2;
        if (relayout(table, capacity) < 0) return NULL;
    }
    return PyLong_FromSsize_t(dropped);
}

static Py_ssize_t id_table_len(IdTable *table) { return table->used; }

static PyObject *id_table_nbytes(IdTable *table, void *closure) {
    return PyLong_FromSsize_t(table->capacity * (Py_ssize_t)sizeof(Slot));
}

static PyMethodDef id_table_methods[] = {
    {"find", (PyCFunction)id_table_find, METH_O, find_doc},
    {"add", (PyCFunction)id_table_add, METH_VARARGS, add_doc},
    {"forget", (PyCFunction)id_table_forget, METH_O, forget_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef id_table_getset[] = {
    {"nbytes", (getter)id_table_nbytes, NULL, "Bytes of the slots (the ids themselves not counted).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods id_table_as_sequence = {
    .sq_length = (lenfunc)id_table_len,
};

static PyTypeObject IdTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "fraudops.features._id_table.IdTable",
    .tp_doc = "Recent transaction ids -> (terminal key, latest time).",
    .tp_basicsize = sizeof(IdTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = id_table_new,
    .tp_dealloc = (destructor)id_table_dealloc,
    .tp_methods = id_table_methods,
    .tp_getset = id_table_getset,
    .tp_as_sequence = &id_table_as_sequence,
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "fraudops.features._id_table",
    .m_doc = "A hash table of recent transaction ids for the online feature store.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__id_table(void) {
    if (PyType_Ready(&IdTableType) < 0) return NULL;
    PyObject *created = PyModule_Create(&module);
    if (created == NULL) return NULL;
    if (PyModule_AddObjectRef(created, "IdTable", (PyObject *)&IdTableType) < 0) {
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
