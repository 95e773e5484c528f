/*
 * search_right(haystack, needles): np.searchsorted(haystack, needles, side="right") for the online store's
 * window bounds, by galloping from the previous answer instead of bisecting the whole array.
 *
 * The store asks, per row of a batch in key order, where the row's key and its windows' lower bounds fall in
 * a level of about a million sorted keys. numpy bisects from scratch (its hint only keeps the lower end for
 * rising needles): ~20 probes a needle, most of them cache misses. A row's needles are close to each other
 * and to the previous row's, so galloping from the last answer takes a few probes in cache lines already
 * read: the binary searches were the largest numpy cost of the features (a fifth of them).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* The first index in [0, n) whose value is > needle (n if none), starting from the hint `from`. */
static Py_ssize_t upper_bound_from(const int64_t *values, Py_ssize_t n, int64_t needle, Py_ssize_t from) {
    Py_ssize_t low, high; /* the answer lies in (low, high]: values[low] <= needle < values[high] */
    if (from < n && values[from] <= needle) {
        /* forward: step 1, 2, 4... past the needle */
        Py_ssize_t step = 1;
        low = from;
        high = from + step;
        while (high < n && values[high] <= needle) {
            low = high;
            step *= 2;
            high = low + step;
        }
        if (high > n) high = n;
    } else {
        /* backward: from is the answer or lies after it */
        Py_ssize_t step = 1;
        high = from < n ? from : n;
        low = high - step;
        while (low >= 0 && values[low] > needle) {
            high = low;
            step *= 2;
            low = high - step;
        }
        if (low < -1) low = -1;
    }
    while (high - low > 1) {
        Py_ssize_t middle = low + (high - low) / 2;
        if (values[middle] <= needle) {
            low = middle;
        } else {
            high = middle;
        }
    }
    return high;
}

PyDoc_STRVAR(search_right_doc,
"search_right(haystack, needles, out, /)\n--\n\n"
"Writes np.searchsorted(haystack, needles, side='right') into `out` (int64, as many as `needles`):\n"
"`haystack` a sorted int64 buffer, `needles` any int64 buffer, best in an order where each is near the\n"
"one before.");

static PyObject *search_right(PyObject *module, PyObject *args) {
    Py_buffer haystack, needles, out;
    if (!PyArg_ParseTuple(args, "y*y*w*:search_right", &haystack, &needles, &out)) return NULL;
    PyObject *result = NULL;
    if (haystack.len % 8 || needles.len % 8 || out.len != needles.len) {
        PyErr_SetString(PyExc_ValueError, "int64 buffers, and `out` as long as `needles`");
        goto done;
    }
    const int64_t *values = haystack.buf, *wanted = needles.buf;
    int64_t *positions = out.buf;
    Py_ssize_t n = haystack.len / 8, count = needles.len / 8, hint = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        hint = upper_bound_from(values, n, wanted[i], hint);
        positions[i] = hint;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&haystack);
    PyBuffer_Release(&needles);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"search_right", search_right, METH_VARARGS, search_right_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "fraudops.features._search",
    .m_doc = "Binary searches of sorted int64 keys that gallop from the previous answer.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__search(void) { return PyModule_Create(&module); }
