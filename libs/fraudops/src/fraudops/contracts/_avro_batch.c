/*
 * Avro bodies of a whole batch, read and written in one C loop each: the Transaction layout the scorer reads
 * and the ScoreResult layout it writes (fraudops.contracts.hotpath checks the catalogue still has them).
 *
 * In Python, even read a field at a time with numpy, a Transaction cost ~1.5 us and a ScoreResult ~1.2 us:
 * a fifth of the scorer's time per payment. Here a body is read once, its identifiers checked as it goes.
 *
 * The reader only ever answers "these are valid, with these values" or "not mine": any payload it does not
 * accept byte for byte (another header, damage, a rule broken, a varint it would have to guess about) is
 * left to the Python path, which decodes it alone and names the exact error. So it may refuse too much,
 * never accept too much: a unit test holds its output to one-by-one decoding on damaged batches.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "Avro's doubles are little-endian: this code copies them as they are in memory"
#endif

#define MAX_VARINT_BYTES 10
#define MAX_IDENTIFIER 128 /* ID_PATTERN: one leading character, then up to 127 */

/* ---- reading ------------------------------------------------------------------------------------------ */

typedef struct {
    const unsigned char *at;
    const unsigned char *end;
} Cursor;

/* A zig-zag varint. Refuses (returns 0) one that runs past the body or past 64 bits: fastavro would have to
 * decide what such bytes mean, so the Python path does. */
static int read_long(Cursor *cursor, int64_t *value) {
    uint64_t raw = 0;
    for (int index = 0; index < MAX_VARINT_BYTES; index++) {
        if (cursor->at >= cursor->end) return 0;
        unsigned char byte = *cursor->at++;
        if (index == MAX_VARINT_BYTES - 1 && byte > 1) return 0;
        raw |= (uint64_t)(byte & 0x7F) << (7 * index);
        if (!(byte & 0x80)) {
            *value = (int64_t)(raw >> 1) ^ -(int64_t)(raw & 1);
            return 1;
        }
    }
    return 0;
}

/* ID_PATTERN, ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$, over raw bytes: any byte outside ASCII fails it, so a
 * string that passes is ASCII and its UTF-8 bytes are its characters. */
static unsigned char identifier_byte[256];

static void fill_identifier_table(void) {
    for (int c = '0'; c <= '9'; c++) identifier_byte[c] = 3;
    for (int c = 'A'; c <= 'Z'; c++) identifier_byte[c] = 3;
    for (int c = 'a'; c <= 'z'; c++) identifier_byte[c] = 3;
    identifier_byte['.'] = identifier_byte['_'] = identifier_byte[':'] = identifier_byte['-'] = 2;
}

typedef struct {
    const unsigned char *start;
    Py_ssize_t length;
} Span;

static int read_identifier(Cursor *cursor, Span *span) {
    int64_t length;
    if (!read_long(cursor, &length) || length < 1 || length > MAX_IDENTIFIER) return 0;
    if (length > cursor->end - cursor->at) return 0;
    const unsigned char *text = cursor->at;
    if (!(identifier_byte[text[0]] & 1)) return 0;
    for (int64_t i = 1; i < length; i++) {
        if (!identifier_byte[text[i]]) return 0;
    }
    span->start = text;
    span->length = (Py_ssize_t)length;
    cursor->at += length;
    return 1;
}

typedef struct {
    Span transaction_id, customer_id, terminal_id;
    int64_t event_ms;
    double amount;
} Transaction;

typedef struct {
    int64_t earliest_ms, latest_ms; /* event times in [earliest, latest) */
    double max_amount;              /* amounts in (0, max] */
} Rules;

/* The body after the header: transaction_id, event_time, customer_id, terminal_id, amount, currency,
 * received_time (null or long), and not one byte more. */
static int read_transaction(Cursor *cursor, const Rules *rules, Transaction *out) {
    int64_t currency_length, branch, received;
    if (!read_identifier(cursor, &out->transaction_id)) return 0;
    if (!read_long(cursor, &out->event_ms)) return 0;
    if (out->event_ms < rules->earliest_ms || out->event_ms >= rules->latest_ms) return 0;
    if (!read_identifier(cursor, &out->customer_id)) return 0;
    if (!read_identifier(cursor, &out->terminal_id)) return 0;
    if (cursor->end - cursor->at < 8) return 0;
    memcpy(&out->amount, cursor->at, 8);
    cursor->at += 8;
    if (!(out->amount > 0.0 && out->amount <= rules->max_amount)) return 0; /* NaN fails too */
    if (!read_long(cursor, &currency_length) || currency_length != 3 || cursor->end - cursor->at < 3) return 0;
    for (int i = 0; i < 3; i++) {
        if (cursor->at[i] < 'A' || cursor->at[i] > 'Z') return 0;
    }
    cursor->at += 3;
    if (!read_long(cursor, &branch) || (branch != 0 && branch != 1)) return 0;
    if (branch == 1 && !read_long(cursor, &received)) return 0;
    return cursor->at == cursor->end;
}

static PyObject *ascii_string(const Span *span) {
    PyObject *text = PyUnicode_New(span->length, 127);
    if (text != NULL) memcpy(PyUnicode_DATA(text), span->start, (size_t)span->length);
    return text;
}

/* Appends `value` to `list`, taking the reference; 0 on failure. */
static int append_new(PyObject *list, PyObject *value) {
    if (value == NULL) return 0;
    int failed = PyList_Append(list, value);
    Py_DECREF(value);
    return failed == 0;
}

static int append_transaction(PyObject **columns, Py_ssize_t position, const Transaction *row) {
    return append_new(columns[0], PyLong_FromSsize_t(position)) &&
           append_new(columns[1], ascii_string(&row->transaction_id)) &&
           append_new(columns[2], ascii_string(&row->customer_id)) &&
           append_new(columns[3], ascii_string(&row->terminal_id)) &&
           append_new(columns[4], PyLong_FromLongLong(row->event_ms)) &&
           append_new(columns[5], PyFloat_FromDouble(row->amount));
}

#define TRANSACTION_COLUMNS 7

PyDoc_STRVAR(read_transactions_doc,
"read_transactions(payloads, header, max_bytes, earliest_ms, latest_ms, max_amount)\n"
"--\n\n"
"The payloads (bytes or None) that are the newest Transaction layout, whole and valid, as columns:\n"
"(positions, transaction_ids, customer_ids, terminal_ids, event_ms, amounts, others), where `others` are\n"
"the positions of every other payload, in order. max_bytes < 0: no limit.");

static PyObject *read_transactions(PyObject *module, PyObject *args) {
    PyObject *payloads;
    Py_buffer header;
    Py_ssize_t max_bytes;
    Rules rules;
    if (!PyArg_ParseTuple(args, "Oy*nLLd", &payloads, &header, &max_bytes, &rules.earliest_ms, &rules.latest_ms,
                          &rules.max_amount)) {
        return NULL;
    }
    PyObject *result = NULL;
    PyObject *columns[TRANSACTION_COLUMNS] = {NULL};
    PyObject *sequence = PySequence_Fast(payloads, "payloads must be a sequence");
    if (sequence == NULL) goto done;
    for (int i = 0; i < TRANSACTION_COLUMNS; i++) {
        if ((columns[i] = PyList_New(0)) == NULL) goto done;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
    PyObject **items = PySequence_Fast_ITEMS(sequence);
    const unsigned char *prefix = header.buf;
    for (Py_ssize_t position = 0; position < count; position++) {
        PyObject *payload = items[position];
        Transaction row;
        int ok = 0;
        if (PyBytes_Check(payload)) {
            Py_ssize_t length = PyBytes_GET_SIZE(payload);
            const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(payload);
            if ((max_bytes < 0 || length <= max_bytes) && length >= header.len &&
                memcmp(data, prefix, (size_t)header.len) == 0) {
                Cursor cursor = {data + header.len, data + length};
                ok = read_transaction(&cursor, &rules, &row);
            }
        }
        if (ok ? !append_transaction(columns, position, &row)
               : !append_new(columns[TRANSACTION_COLUMNS - 1], PyLong_FromSsize_t(position))) {
            goto done;
        }
    }
    result = PyTuple_New(TRANSACTION_COLUMNS);
    if (result == NULL) goto done;
    for (int i = 0; i < TRANSACTION_COLUMNS; i++) {
        PyTuple_SET_ITEM(result, i, columns[i]);
        columns[i] = NULL;
    }
done:
    for (int i = 0; i < TRANSACTION_COLUMNS; i++) Py_XDECREF(columns[i]);
    Py_XDECREF(sequence);
    PyBuffer_Release(&header);
    return result;
}

/* ---- writing ------------------------------------------------------------------------------------------ */

static Py_ssize_t long_size(int64_t value) {
    uint64_t encoded = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
    Py_ssize_t size = 1;
    while (encoded > 0x7F) {
        encoded >>= 7;
        size++;
    }
    return size;
}

static unsigned char *write_long(unsigned char *out, int64_t value) {
    uint64_t encoded = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
    while (encoded > 0x7F) {
        *out++ = (unsigned char)((encoded & 0x7F) | 0x80);
        encoded >>= 7;
    }
    *out++ = (unsigned char)encoded;
    return out;
}

static unsigned char *write_string(unsigned char *out, const char *text, Py_ssize_t length) {
    out = write_long(out, length);
    memcpy(out, text, (size_t)length);
    return out + length;
}

/* What each row's reasons are made of, borrowed from the caller's objects for the time of the call. */
typedef struct {
    const char *feature;
    Py_ssize_t feature_length;
    double contribution;
} Reason;

/* Reads one row's reasons ((feature, contribution) pairs) into `reasons` (room for `room`); the count, or -1
 * with an exception set. `*holder` gets what keeps the borrowed features alive (a row that is not a list or
 * tuple is copied into one): the caller releases it once the row is written. */
static Py_ssize_t read_reasons(PyObject *row, Reason *reasons, Py_ssize_t room, PyObject **holder) {
    PyObject *pairs = PySequence_Fast(row, "reasons must be sequences of (feature, contribution)");
    *holder = pairs;
    if (pairs == NULL) return -1;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(pairs);
    if (count > room) {
        PyErr_Format(PyExc_ValueError, "at most %zd reasons per result", room);
        count = -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(pairs, i);
        PyObject *feature, *contribution;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "a reason is a (feature, contribution) tuple");
            count = -1;
            break;
        }
        feature = PyTuple_GET_ITEM(pair, 0);
        contribution = PyTuple_GET_ITEM(pair, 1);
        /* The UTF-8 form is cached on the str object, which `pairs` keeps alive. */
        reasons[i].feature = PyUnicode_AsUTF8AndSize(feature, &reasons[i].feature_length);
        reasons[i].contribution = PyFloat_AsDouble(contribution);
        if (reasons[i].feature == NULL || (reasons[i].contribution == -1.0 && PyErr_Occurred())) {
            count = -1;
            break;
        }
    }
    if (count < 0) Py_CLEAR(*holder);
    return count;
}

#define MAX_REASONS 64

PyDoc_STRVAR(write_score_results_doc,
"write_score_results(header, transaction_ids, customer_ids, scores, decisions, event_ms, reasons, model_part,"
" times_tail)\n"
"--\n\n"
"One ScoreResult body per row: header, ids, score (float64 buffer), decision (uint8 buffer of Avro enum\n"
"indexes), reasons, then `model_part` (model name to fallback, encoded once), event time (int64 buffer),\n"
"then `times_tail` (received and scored times, encoded once).");

static PyObject *write_score_results(PyObject *module, PyObject *args) {
    Py_buffer header, scores, decisions, events, model_part, times_tail;
    PyObject *transaction_ids, *customer_ids, *reasons;
    if (!PyArg_ParseTuple(args, "y*OOy*y*y*Oy*y*", &header, &transaction_ids, &customer_ids, &scores, &decisions,
                          &events, &reasons, &model_part, &times_tail)) {
        return NULL;
    }
    PyObject *result = NULL, *ids = NULL, *customers = NULL, *why = NULL;
    ids = PySequence_Fast(transaction_ids, "transaction_ids must be a sequence");
    customers = ids ? PySequence_Fast(customer_ids, "customer_ids must be a sequence") : NULL;
    why = customers ? PySequence_Fast(reasons, "reasons must be a sequence") : NULL;
    if (why == NULL) goto done;
    Py_ssize_t rows = PySequence_Fast_GET_SIZE(ids);
    if (PySequence_Fast_GET_SIZE(customers) != rows || PySequence_Fast_GET_SIZE(why) != rows ||
        scores.len != rows * 8 || events.len != rows * 8 || decisions.len != rows) {
        PyErr_SetString(PyExc_ValueError, "every column must have one value per row");
        goto done;
    }
    if ((result = PyList_New(rows)) == NULL) goto done;
    const double *score = scores.buf;
    const int64_t *event_ms = events.buf;
    const unsigned char *decision = decisions.buf;
    Reason row_reasons[MAX_REASONS];
    for (Py_ssize_t row = 0; row < rows; row++) {
        Py_ssize_t id_length, customer_length;
        const char *id = PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(ids, row), &id_length);
        const char *customer = id ? PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(customers, row), &customer_length)
                                  : NULL;
        PyObject *holder = NULL;
        Py_ssize_t reason_count =
            customer ? read_reasons(PySequence_Fast_GET_ITEM(why, row), row_reasons, MAX_REASONS, &holder) : -1;
        if (reason_count < 0) goto failed;
        Py_ssize_t size = header.len + long_size(id_length) + id_length + long_size(customer_length) +
                          customer_length + 8 + long_size(decision[row]) + model_part.len + long_size(event_ms[row]) +
                          times_tail.len + 1;
        if (reason_count) size += long_size(reason_count);
        for (Py_ssize_t i = 0; i < reason_count; i++) {
            size += long_size(row_reasons[i].feature_length) + row_reasons[i].feature_length + 8;
        }
        PyObject *body = PyBytes_FromStringAndSize(NULL, size);
        if (body == NULL) {
            Py_DECREF(holder);
            goto failed;
        }
        unsigned char *start = (unsigned char *)PyBytes_AS_STRING(body), *out = start;
        memcpy(out, header.buf, (size_t)header.len);
        out += header.len;
        out = write_string(out, id, id_length);
        out = write_string(out, customer, customer_length);
        memcpy(out, &score[row], 8);
        out += 8;
        out = write_long(out, decision[row]);
        if (reason_count) {
            out = write_long(out, reason_count);
            for (Py_ssize_t i = 0; i < reason_count; i++) {
                out = write_string(out, row_reasons[i].feature, row_reasons[i].feature_length);
                memcpy(out, &row_reasons[i].contribution, 8);
                out += 8;
            }
        }
        *out++ = 0; /* the end of the reasons array */
        memcpy(out, model_part.buf, (size_t)model_part.len);
        out += model_part.len;
        out = write_long(out, event_ms[row]);
        memcpy(out, times_tail.buf, (size_t)times_tail.len);
        out += times_tail.len;
        assert(out - start == size);
        Py_DECREF(holder);
        PyList_SET_ITEM(result, row, body);
    }
    goto done;
failed:
    Py_CLEAR(result);
done:
    Py_XDECREF(ids);
    Py_XDECREF(customers);
    Py_XDECREF(why);
    PyBuffer_Release(&header);
    PyBuffer_Release(&scores);
    PyBuffer_Release(&decisions);
    PyBuffer_Release(&events);
    PyBuffer_Release(&model_part);
    PyBuffer_Release(&times_tail);
    return result;
}

static PyMethodDef methods[] = {
    {"read_transactions", read_transactions, METH_VARARGS, read_transactions_doc},
    {"write_score_results", write_score_results, METH_VARARGS, write_score_results_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "fraudops.contracts._avro_batch",
    .m_doc = "Avro bodies of whole batches in C: Transactions read, ScoreResults written.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__avro_batch(void) {
    fill_identifier_table();
    return PyModule_Create(&module);
}
