/* The compiled hit path of ir_core's eager dispatch: ir_core/fastpath.py loads and checks it,
 * ir_core/dispatch.py builds one Dispatcher per op.
 *
 * A call builds a key of everything an impl's supports_args may read -- the priority scope, the
 * type, layout, dtype, device, sizes, strides and requires_grad of every tensor, and the type and
 * value of every other argument -- as a flat array of 64-bit words, finds it in an open-addressing
 * table and calls the kernel remembered there. Nothing on that path allocates but the one Python
 * int the `_cdata` getter returns.
 *
 * Tensor metadata is read through torch's stable C shim (torch/csrc/inductor/aoti_torch/c/shim.h,
 * the ABI AOTInductor's compiled models rely on across torch releases). Its functions are declared
 * here, not included, and their addresses are handed over at run time by fastpath.py: this module
 * builds without torch, links to no torch library, and binds to whichever torch is loaded. The
 * handle the shim takes is a pointer to an at::Tensor, which is one pointer to the TensorImpl that
 * `Tensor._cdata` returns; fastpath.py checks that on real tensors (against the handle torch
 * itself makes) before it enables this module, and falls back to the pure-Python path otherwise.
 *
 * Whatever this module cannot key -- a tensor subclass, a sparse or nested layout, a scalar type
 * other than None, bool, int, float, an interned str or a torch.dtype, keyword arguments -- goes
 * to the Python fallback, which is exact for everything.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* -- torch's stable C shim, bound at run time -------------------------------------------------- */

typedef void *AtenTensorHandle;
typedef int32_t (*int64_getter)(AtenTensorHandle, int64_t *);
typedef int32_t (*array_getter)(AtenTensorHandle, int64_t **);
typedef int32_t (*int32_getter)(AtenTensorHandle, int32_t *);

static struct {
    int ready;
    int64_getter get_dim;
    array_getter get_sizes, get_strides;
    int32_getter get_dtype, get_device_type, get_device_index, get_layout;
    int32_t strided; /* aoti_torch_layout_strided() */
    /* getset descriptors of torch._C.TensorBase and the types keyed here (strong references) */
    PyObject *cdata, *requires_grad;
    PyObject *tensor, *parameter, *dtype;
} torch_api;

/* -- keys --------------------------------------------------------------------------------------- */

#define MAX_WORDS 512
#define MAX_DIM 64
#define MAX_REFS 32

enum { TAG_SCOPE = 1, TAG_NONE, TAG_TENSOR, TAG_BOOL, TAG_INT, TAG_FLOAT, TAG_OBJECT };

/* Objects keyed by identity (the scope, interned strings, dtypes) are listed in refs: an entry
 * holds a reference to each, so that no other object can take their address while it lives. */
typedef struct {
    Py_ssize_t n, nrefs;
    int64_t words[MAX_WORDS];
    PyObject *refs[MAX_REFS];
} Key;

static int put(Key *k, int64_t a, int64_t b) {
    if (k->n + 2 > MAX_WORDS) return -1;
    k->words[k->n++] = a;
    k->words[k->n++] = b;
    return 0;
}

static int put_object(Key *k, int64_t tag, PyObject *obj) {
    if (k->nrefs == MAX_REFS) return -1;
    k->refs[k->nrefs++] = obj;
    return put(k, tag, (int64_t)(intptr_t)obj);
}

static PyObject *get_attribute(PyObject *descr, PyObject *obj) {
    return Py_TYPE(descr)->tp_descr_get(descr, obj, (PyObject *)Py_TYPE(obj));
}

/* The metadata of a plain tensor, or -1 (no Python error set) when it cannot be keyed here. */
static int put_tensor(Key *k, PyObject *t) {
    PyObject *type = (PyObject *)Py_TYPE(t);
    if (type != torch_api.tensor && type != torch_api.parameter) return -1;
    PyObject *address = get_attribute(torch_api.cdata, t);
    if (address == NULL) goto error;
    void *impl = PyLong_AsVoidPtr(address);
    Py_DECREF(address);
    if (impl == NULL) goto error;
    AtenTensorHandle h = (AtenTensorHandle)&impl;
    int64_t dim, *sizes, *strides;
    int32_t layout, dtype, device_type, device_index;
    if (torch_api.get_layout(h, &layout) || layout != torch_api.strided) return -1;
    if (torch_api.get_dim(h, &dim) || dim < 0 || dim > MAX_DIM) return -1;
    if (k->n + 6 + 2 * dim > MAX_WORDS) return -1;
    if (torch_api.get_sizes(h, &sizes) || torch_api.get_strides(h, &strides) ||
        torch_api.get_dtype(h, &dtype) || torch_api.get_device_type(h, &device_type) ||
        torch_api.get_device_index(h, &device_index))
        return -1;
    PyObject *grad = get_attribute(torch_api.requires_grad, t);
    if (grad == NULL) goto error;
    int requires_grad = grad == Py_True;
    Py_DECREF(grad);
    int64_t *w = k->words + k->n;
    w[0] = TAG_TENSOR;
    w[1] = (int64_t)(intptr_t)type; /* torch.Tensor or torch.nn.Parameter: immortal for us */
    w[2] = dtype;
    w[3] = ((int64_t)device_type << 32) | (uint32_t)device_index;
    w[4] = requires_grad;
    w[5] = dim;
    if (dim) {
        memcpy(w + 6, sizes, (size_t)dim * sizeof(int64_t));
        memcpy(w + 6 + dim, strides, (size_t)dim * sizeof(int64_t));
    }
    k->n += 6 + 2 * dim;
    return 0;
error:
    PyErr_Clear();
    return -1;
}

static int put_scalar(Key *k, PyObject *v) {
    if (v == Py_None) return put(k, TAG_NONE, 0);
    PyTypeObject *type = Py_TYPE(v);
    if (type == &PyBool_Type) return put(k, TAG_BOOL, v == Py_True);
    if (type == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(v);
        int64_t bits;
        memcpy(&bits, &d, sizeof bits);
        return put(k, TAG_FLOAT, bits);
    }
    if (type == &PyLong_Type) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (value == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return -1;
        }
        return put(k, TAG_INT, value);
    }
    if ((type == &PyUnicode_Type && PyUnicode_CHECK_INTERNED(v)) ||
        (PyObject *)type == torch_api.dtype)
        return put_object(k, TAG_OBJECT, v);
    return -1;
}

/* -- the dispatcher ----------------------------------------------------------------------------- */

typedef struct {
    uint64_t hash;
    PyObject *fn, *note;
    Py_ssize_t nrefs, n;
    PyObject *refs[MAX_REFS];
    int64_t words[];
} Entry;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Py_ssize_t nparams;
    char *kinds; /* per parameter: 't' tensor, 'o' optional tensor, 's' anything else */
    PyObject *scope_var, *resolve, *fallback, *annotate, *kinds_str;
    Entry **slots;
    Py_ssize_t capacity, count, limit;
    uint64_t generation;
    Py_ssize_t hits, misses, fallbacks;
} Dispatcher;

static int build_key(Dispatcher *self, PyObject *const *args, PyObject *scope, Key *k) {
    k->n = k->nrefs = 0;
    if (put_object(k, TAG_SCOPE, scope)) return -1;
    for (Py_ssize_t i = 0; i < self->nparams; i++) {
        char kind = self->kinds[i];
        PyObject *a = args[i];
        int failed;
        if (kind == 's')
            failed = put_scalar(k, a);
        else if (kind == 'o' && a == Py_None)
            failed = put(k, TAG_NONE, 0);
        else
            failed = put_tensor(k, a);
        if (failed) return -1;
    }
    return 0;
}

static uint64_t hash_key(const Key *k) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)k->n;
    for (Py_ssize_t i = 0; i < k->n; i++) {
        h ^= (uint64_t)k->words[i];
        h *= 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    return h;
}

static Entry *find(Dispatcher *self, const Key *k, uint64_t h) {
    if (self->capacity == 0) return NULL;
    Py_ssize_t mask = self->capacity - 1;
    for (Py_ssize_t i = (Py_ssize_t)(h & (uint64_t)mask);; i = (i + 1) & mask) {
        Entry *e = self->slots[i];
        if (e == NULL) return NULL;
        if (e->hash == h && e->n == k->n &&
            memcmp(e->words, k->words, (size_t)k->n * sizeof(int64_t)) == 0)
            return e;
    }
}

static void free_entry(Entry *e) {
    Py_DECREF(e->fn);
    Py_DECREF(e->note);
    for (Py_ssize_t i = 0; i < e->nrefs; i++) Py_DECREF(e->refs[i]);
    PyMem_Free(e);
}

static void clear_table(Dispatcher *self) {
    Entry **slots = self->slots;
    Py_ssize_t capacity = self->capacity;
    self->slots = NULL;
    self->capacity = self->count = 0;
    self->generation++;
    for (Py_ssize_t i = 0; i < capacity; i++)
        if (slots[i] != NULL) free_entry(slots[i]);
    PyMem_Free(slots);
}

static int resize(Dispatcher *self, Py_ssize_t capacity) {
    Entry **slots = PyMem_Calloc((size_t)capacity, sizeof(Entry *));
    if (slots == NULL) return -1;
    Py_ssize_t mask = capacity - 1;
    for (Py_ssize_t i = 0; i < self->capacity; i++) {
        Entry *e = self->slots[i];
        if (e == NULL) continue;
        Py_ssize_t j = (Py_ssize_t)(e->hash & (uint64_t)mask);
        while (slots[j] != NULL) j = (j + 1) & mask;
        slots[j] = e;
    }
    PyMem_Free(self->slots);
    self->slots = slots;
    self->capacity = capacity;
    return 0;
}

/* Remember fn for k; a failure to allocate only means the next call decides again. */
static void store(Dispatcher *self, const Key *k, uint64_t h, PyObject *fn, PyObject *note) {
    if (find(self, k, h) != NULL) return; /* another thread decided meanwhile */
    if (self->count >= self->limit) clear_table(self);
    if (2 * (self->count + 1) > self->capacity &&
        resize(self, self->capacity ? 2 * self->capacity : 16) < 0)
        return;
    Entry *e = PyMem_Malloc(sizeof(Entry) + (size_t)k->n * sizeof(int64_t));
    if (e == NULL) return;
    e->hash = h;
    e->n = k->n;
    memcpy(e->words, k->words, (size_t)k->n * sizeof(int64_t));
    e->nrefs = k->nrefs;
    for (Py_ssize_t i = 0; i < k->nrefs; i++) {
        Py_INCREF(k->refs[i]);
        e->refs[i] = k->refs[i];
    }
    Py_INCREF(fn);
    Py_INCREF(note);
    e->fn = fn;
    e->note = note;
    Py_ssize_t mask = self->capacity - 1;
    Py_ssize_t j = (Py_ssize_t)(h & (uint64_t)mask);
    while (self->slots[j] != NULL) j = (j + 1) & mask;
    self->slots[j] = e;
    self->count++;
}

/* Give the exception being raised a note naming the op and the impl (see dispatch.py). */
static void annotate(Dispatcher *self, PyObject *note) {
    if (note == Py_None) return;
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *r = PyObject_CallFunctionObjArgs(self->annotate, exc, note, NULL);
    if (r == NULL) PyErr_Clear();
    Py_XDECREF(r);
    PyErr_SetRaisedException(exc);
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) PyException_SetTraceback(value, tb);
    PyObject *r = PyObject_CallFunctionObjArgs(self->annotate, value, note, NULL);
    if (r == NULL) PyErr_Clear();
    Py_XDECREF(r);
    PyErr_Restore(type, value, tb);
#endif
}

static PyObject *call_kernel(Dispatcher *self, PyObject *fn, PyObject *note,
                             PyObject *const *args, Py_ssize_t nargs) {
    PyObject *out = PyObject_Vectorcall(fn, args, (size_t)nargs, NULL);
    if (out == NULL) annotate(self, note);
    return out;
}

static PyObject *Dispatcher_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                                       PyObject *kwnames) {
    Dispatcher *self = (Dispatcher *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *scope = NULL;
    Key k;
    if (kwnames != NULL || nargs != self->nparams || !torch_api.ready) goto fallback;
    if (PyContextVar_Get(self->scope_var, NULL, &scope) < 0) return NULL;
    if (scope == NULL || build_key(self, args, scope, &k) < 0) goto fallback;
    uint64_t h = hash_key(&k);
    Entry *e = find(self, &k, h);
    PyObject *fn, *note, *out;
    if (e != NULL) { /* the hit path */
        self->hits++;
        fn = e->fn;
        note = e->note;
        Py_INCREF(fn); /* the entry may go while the kernel runs (another thread clears) */
        Py_INCREF(note);
        Py_DECREF(scope);
        out = call_kernel(self, fn, note, args, nargs);
        Py_DECREF(fn);
        Py_DECREF(note);
        return out;
    }
    self->misses++;
    uint64_t generation = self->generation;
    PyObject *decision = PyObject_Vectorcall(self->resolve, args, (size_t)nargs, NULL);
    if (decision == NULL) {
        Py_DECREF(scope);
        return NULL;
    }
    if (!PyTuple_Check(decision) || PyTuple_GET_SIZE(decision) != 2) {
        Py_DECREF(scope);
        Py_DECREF(decision);
        PyErr_SetString(PyExc_TypeError, "ir_core: resolve must return (kernel, note)");
        return NULL;
    }
    fn = PyTuple_GET_ITEM(decision, 0);
    note = PyTuple_GET_ITEM(decision, 1);
    if (generation == self->generation) /* nothing was forgotten while deciding */
        store(self, &k, h, fn, note);
    Py_DECREF(scope);
    out = call_kernel(self, fn, note, args, nargs);
    Py_DECREF(decision);
    return out;
fallback:
    Py_XDECREF(scope);
    self->fallbacks++;
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static PyObject *Dispatcher_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"kinds", "scope_var", "resolve", "fallback", "annotate", "limit", NULL};
    PyObject *kinds, *scope_var, *resolve, *fallback, *annotate_fn;
    Py_ssize_t limit;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "UOOOOn", names, &kinds, &scope_var, &resolve,
                                     &fallback, &annotate_fn, &limit))
        return NULL;
    if (!PyContextVar_CheckExact(scope_var)) {
        PyErr_SetString(PyExc_TypeError, "scope_var must be a contextvars.ContextVar");
        return NULL;
    }
    if (limit < 1) {
        PyErr_SetString(PyExc_ValueError, "limit must be >= 1");
        return NULL;
    }
    const char *text = PyUnicode_AsUTF8(kinds);
    if (text == NULL) return NULL;
    if (strspn(text, "tos") != strlen(text)) {
        PyErr_SetString(PyExc_ValueError, "kinds holds one of 't', 'o', 's' per parameter");
        return NULL;
    }
    Dispatcher *self = (Dispatcher *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->vectorcall = Dispatcher_vectorcall;
    self->nparams = (Py_ssize_t)strlen(text);
    Py_INCREF(kinds);
    self->kinds_str = kinds;
    self->kinds = (char *)text; /* owned by kinds_str */
    Py_INCREF(scope_var);
    self->scope_var = scope_var;
    Py_INCREF(resolve);
    self->resolve = resolve;
    Py_INCREF(fallback);
    self->fallback = fallback;
    Py_INCREF(annotate_fn);
    self->annotate = annotate_fn;
    self->limit = limit;
    return (PyObject *)self;
}

static int Dispatcher_traverse(Dispatcher *self, visitproc visit, void *arg) {
    Py_VISIT(self->scope_var);
    Py_VISIT(self->resolve);
    Py_VISIT(self->fallback);
    Py_VISIT(self->annotate);
    for (Py_ssize_t i = 0; i < self->capacity; i++) {
        Entry *e = self->slots[i];
        if (e == NULL) continue;
        Py_VISIT(e->fn);
        Py_VISIT(e->note);
        for (Py_ssize_t j = 0; j < e->nrefs; j++) Py_VISIT(e->refs[j]);
    }
    return 0;
}

static int Dispatcher_clear_refs(Dispatcher *self) {
    if (self->slots != NULL) clear_table(self);
    Py_CLEAR(self->scope_var);
    Py_CLEAR(self->resolve);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->annotate);
    return 0;
}

static void Dispatcher_dealloc(Dispatcher *self) {
    PyObject_GC_UnTrack(self);
    Dispatcher_clear_refs(self);
    Py_CLEAR(self->kinds_str);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Dispatcher_forget(Dispatcher *self, PyObject *unused) {
    clear_table(self);
    Py_RETURN_NONE;
}

static PyObject *Dispatcher_stats(Dispatcher *self, PyObject *unused) {
    return Py_BuildValue("{snsnsnsn}", "hits", self->hits, "misses", self->misses, "fallbacks",
                         self->fallbacks, "entries", self->count);
}

/* The key a call with these arguments (all positional) has here, as a tuple, or None when it
 * goes to the fallback; the current scope is its first element. */
static PyObject *Dispatcher_key(Dispatcher *self, PyObject *args) {
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *scope = NULL;
    Key k;
    if (n != self->nparams || !torch_api.ready) Py_RETURN_NONE;
    if (PyContextVar_Get(self->scope_var, NULL, &scope) < 0) return NULL;
    int failed = scope == NULL || build_key(self, &PyTuple_GET_ITEM(args, 0), scope, &k) < 0;
    Py_XDECREF(scope);
    if (failed) Py_RETURN_NONE;
    PyObject *out = PyTuple_New(k.n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < k.n; i++) {
        PyObject *w = PyLong_FromLongLong(k.words[i]);
        if (w == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, w);
    }
    return out;
}

static PyMethodDef Dispatcher_methods[] = {
    {"forget", (PyCFunction)Dispatcher_forget, METH_NOARGS, "Forget every remembered decision."},
    {"stats", (PyCFunction)Dispatcher_stats, METH_NOARGS, "Counters: hits, misses, fallbacks."},
    {"key", (PyCFunction)Dispatcher_key, METH_VARARGS, "The key of a call, or None."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DispatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ir_core._fastpath.Dispatcher",
    .tp_basicsize = sizeof(Dispatcher),
    .tp_dealloc = (destructor)Dispatcher_dealloc,
    .tp_vectorcall_offset = offsetof(Dispatcher, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Dispatcher(kinds, scope_var, resolve, fallback, annotate, limit): one op's hit "
              "path; calling it with all arguments positionally dispatches them.",
    .tp_traverse = (traverseproc)Dispatcher_traverse,
    .tp_clear = (inquiry)Dispatcher_clear_refs,
    .tp_methods = Dispatcher_methods,
    .tp_new = Dispatcher_new,
};

/* -- module functions --------------------------------------------------------------------------- */

static int address_of(PyObject *functions, const char *name, void **out) {
    PyObject *value = PyDict_GetItemString(functions, name);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "no address for %s", name);
        return -1;
    }
    *out = PyLong_AsVoidPtr(value);
    return *out == NULL ? -1 : 0;
}

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *functions, *cdata, *requires_grad, *tensor, *parameter, *dtype;
    int strided;
    if (!PyArg_ParseTuple(args, "O!iOOOOO", &PyDict_Type, &functions, &strided, &cdata,
                          &requires_grad, &tensor, &parameter, &dtype))
        return NULL;
    if (Py_TYPE(cdata)->tp_descr_get == NULL || Py_TYPE(requires_grad)->tp_descr_get == NULL) {
        PyErr_SetString(PyExc_TypeError, "_cdata and requires_grad must be descriptors");
        return NULL;
    }
    void *p[7];
    const char *names[7] = {"aoti_torch_get_dim",          "aoti_torch_get_sizes",
                            "aoti_torch_get_strides",      "aoti_torch_get_dtype",
                            "aoti_torch_get_device_type",  "aoti_torch_get_device_index",
                            "aoti_torch_get_layout"};
    for (int i = 0; i < 7; i++)
        if (address_of(functions, names[i], &p[i]) < 0) return NULL;
    torch_api.ready = 0;
    torch_api.get_dim = (int64_getter)p[0];
    torch_api.get_sizes = (array_getter)p[1];
    torch_api.get_strides = (array_getter)p[2];
    torch_api.get_dtype = (int32_getter)p[3];
    torch_api.get_device_type = (int32_getter)p[4];
    torch_api.get_device_index = (int32_getter)p[5];
    torch_api.get_layout = (int32_getter)p[6];
    torch_api.strided = strided;
    PyObject *keep[5] = {cdata, requires_grad, tensor, parameter, dtype};
    PyObject **slots[5] = {&torch_api.cdata, &torch_api.requires_grad, &torch_api.tensor,
                           &torch_api.parameter, &torch_api.dtype};
    for (int i = 0; i < 5; i++) {
        Py_INCREF(keep[i]);
        Py_XSETREF(*slots[i], keep[i]);
    }
    Py_RETURN_NONE;
}

static PyObject *set_ready(PyObject *module, PyObject *flag) {
    int ready = PyObject_IsTrue(flag);
    if (ready < 0) return NULL;
    if (ready && torch_api.get_dim == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    torch_api.ready = ready;
    Py_RETURN_NONE;
}

/* What the key reads of one tensor: (dim, sizes, strides, dtype code, device type, device index,
 * requires_grad), or None when it cannot be keyed here. fastpath.py compares it with what
 * Python reads before enabling the module. */
static PyObject *metadata(PyObject *module, PyObject *t) {
    Key k;
    k.n = k.nrefs = 0;
    if (torch_api.get_dim == NULL || put_tensor(&k, t) < 0) Py_RETURN_NONE;
    int64_t *w = k.words;
    Py_ssize_t dim = (Py_ssize_t)w[5];
    PyObject *sizes = PyTuple_New(dim), *strides = PyTuple_New(dim);
    if (sizes == NULL || strides == NULL) goto error;
    for (Py_ssize_t i = 0; i < dim; i++) {
        PyObject *size = PyLong_FromLongLong(w[6 + i]);
        PyObject *stride = PyLong_FromLongLong(w[6 + dim + i]);
        if (size == NULL || stride == NULL) {
            Py_XDECREF(size);
            Py_XDECREF(stride);
            goto error;
        }
        PyTuple_SET_ITEM(sizes, i, size);
        PyTuple_SET_ITEM(strides, i, stride);
    }
    return Py_BuildValue("(nNNiiiO)", dim, sizes, strides, (int)w[2], (int)(w[3] >> 32),
                         (int)(int32_t)(w[3] & 0xFFFFFFFF), w[4] ? Py_True : Py_False);
error:
    Py_XDECREF(sizes);
    Py_XDECREF(strides);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(functions, strided, cdata, requires_grad, tensor, parameter, dtype): bind "
     "torch's shim (name -> address) and the objects keys are made of; leaves the module off."},
    {"set_ready", set_ready, METH_O, "Turn the compiled path on or off (after the checks)."},
    {"metadata", metadata, METH_O, "What a key reads of one tensor, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "ir_core._fastpath", "The compiled hit path of ir_core's dispatch.",
    -1, module_methods,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (PyType_Ready(&DispatcherType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) return NULL;
    Py_INCREF(&DispatcherType);
    if (PyModule_AddObject(m, "Dispatcher", (PyObject *)&DispatcherType) < 0) {
        Py_DECREF(&DispatcherType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
