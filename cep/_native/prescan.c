/*
 * cep._prescan — skip, without decoding them, the JSON lines that no rule wants.
 *
 * The file-mode fast path (cep/operator/prescan.py) hands a chunk of whole JSON lines to
 * skip().  For each line it checks, in C and without creating Python objects, that
 *
 *   1. the line is one JSON object in a strict subset of RFC 8259 that orjson decodes the
 *      same way (ASCII only, no exponents, integers of at most 18 digits, no \u escape of a
 *      surrogate, nesting depth at most 32, no tracked key twice in one object);
 *   2. its event-time field is an integer ts with last <= ts <= due (in order, and no timer
 *      of any rule is due before it);
 *   3. every rule's gate (see below) is definitely false for it.
 *
 * Such a line is an event that only advances the largest event time seen: it is counted
 * and passed over.  skip() stops at the first line for which any check fails or cannot be
 * decided; the caller decodes that line in Python and handles it exactly as the Python path
 * would, then calls skip() again after it.  Everything here is therefore only allowed to
 * say "this line certainly changes nothing"; anything unusual falls back to Python.
 *
 * A gate is a predicate over the values at a few field paths of the line, in three-valued
 * logic (FALSE, TRUE, UNKNOWN; Kleene's and/or/not): comparisons with literals, `is null`,
 * truth (`is true`), membership in a list of strings, and "the rule's key value is a key of
 * this dict" (the rule's per-key state).  The comparison semantics are those of
 * cep/compiler/codegen.py: a comparison with a missing or null value is false, ordering
 * needs two numbers or two strings, bool is not a number.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32
#define MAX_INT_DIGITS 18
#define MAX_NUM_LEN 40
#define EXACT_DOUBLE_INT 9007199254740992LL /* 2**53 */

enum { R_FALSE = 0, R_TRUE = 1, R_UNKNOWN = 2 };

/* kinds of a tracked value */
enum { V_MISSING = 0, V_NULL, V_TRUE, V_FALSE, V_INT, V_FLOAT, V_STR, V_ESTR, V_OBJ, V_ARR };

typedef struct {
    int kind;
    const char *s; /* V_STR: the characters between the quotes */
    Py_ssize_t n;
    long long i;
    double d;
} Val;

/* a node of the trie of tracked field paths */
typedef struct {
    const char *name; /* UTF-8, owned by the program's `names` tuple */
    Py_ssize_t len;
    int slot;         /* value slot, or -1 when only a step towards deeper paths */
    int first_child;  /* index of the first child node, or -1 */
    int next;         /* index of the next sibling, or -1 */
    unsigned seen;    /* line stamp: the key was met in the current line */
} TNode;

/* predicate opcodes */
enum {
    P_CONST, P_AND, P_OR, P_NOT, P_CMP_STR, P_CMP_NUM, P_CMP_BOOL, P_TRUTH, P_ISNULL,
    P_IN_STR, P_HELD
};
enum { C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE };

typedef struct {
    int op;
    int cmp;        /* C_* for comparisons; negated flag for P_ISNULL / P_IN_STR */
    int slot;
    int value;      /* P_CONST: R_*; P_CMP_BOOL: 1 true / 0 false; P_HELD: rule index */
    int a, n;       /* P_AND / P_OR: children are kids[a .. a+n); P_NOT: kids[a] */
    const char *s;  /* P_CMP_STR: literal */
    Py_ssize_t slen;
    long long li;   /* P_CMP_NUM: literal, is_int says which */
    double ld;
    int is_int;
    PyObject *strs; /* P_IN_STR: tuple of bytes */
} PNode;

typedef struct {
    PyObject_HEAD
    PyObject *names;   /* keeps the node names alive */
    PyObject *owners;  /* tuple: per rule, an object with a `keys` dict attribute */
    TNode *trie;
    int ntrie;
    int root;          /* first top-level node */
    int nslots;
    int time_slot;
    PNode *pn;
    int npn;
    int *kids;
    int nkids;
    int *gates;        /* root node of each gate */
    int ngates;
    unsigned stamp;
    Val *vals;
    PyObject **keys;   /* during skip(): each owner's `keys` dict */
    PyObject **keyobj; /* during a line: the key object made from each slot, or NULL */
    char *held_slot;   /* per slot: some `held` test looks its value up as a key */
    int *found;        /* during a line: the gates that want it */
    signed char *touched_hit; /* during a line: per key slot, whether its key is in `touched`
                               * (-1: not looked up yet) */
    PyObject **touched; /* during batch(): per key slot, a set of the keys of the lines put in
                         * the batch (their state may change before the caller's next call),
                         * or NULL */
    PyObject **holders; /* per key slot: a set holding at least every key any rule looking
                         * that slot up holds state for, or NULL (then each rule's dict) */
    signed char *holders_hit; /* during a line: per key slot, whether its key is in `holders`
                               * (-1: not looked up yet) */
    /* optional index: when slot `ix_slot` holds a plain string equal to ix_values[e], only
     * the gates ix_gate[k] for k in [ix_start[e], ix_start[e+1]) can be other than false,
     * and each is then decided by its predicate specialised to that value, ix_node[k]; for
     * any other plain string only the gates ix_any can be */
    int ix_slot;
    int ix_n;
    PyObject *ix_values; /* tuple of bytes */
    int *ix_start;
    int *ix_gate;
    int *ix_node;
    int *ix_any;
    int ix_nany;
    /* Within index entry e, two groups of gates are decided without testing each member
     * (group_index()); ix_start/ix_gate/ix_node then hold the other gates only.
     * Thresholds: the gates k in [gx_num_start[e], gx_num_start[e+1]) are each one ordering
     * of the number at slot gx_num_slot[e] with a literal, all of one direction; stored
     * with gx_num_t[k] = the literal (its negation for `<`/`<=`) and gx_num_incl[k] (`>=`,
     * `<=`), sorted so that the gates holding for a number are a prefix (found by binary
     * search).  Key look-ups: the gates in [gx_held_start[e], gx_held_start[e+1]) are each
     * `held` of slot gx_held_slot[e], all false (or all unknown) when one look-up in the
     * shared holders (or the batch's touched keys) says so. */
    int *gx_num_start;
    int *gx_num_slot;
    signed char *gx_num_above;
    double *gx_num_t;
    unsigned char *gx_num_incl;
    int *gx_num_gate;
    int *gx_num_node;
    int *gx_held_start;
    int *gx_held_slot;
    int *gx_held_gate;
    int *gx_held_node;
} Program;

/* ---------------------------------------------------------------- JSON scanning */

typedef struct {
    Program *pg;
    const unsigned char *end;
} Scan;

/* The scanning loops need no bound check: the byte at a line's `end` is the '\n' that ends
 * it or, for the chunk's last line, the NUL every bytes object has after its data (skip()
 * takes only bytes), and neither is whitespace, a plain string byte or a digit. */

/* whitespace JSON allows inside a line */
static unsigned char WS[256];
/* bytes that stand for themselves inside a string: printable ASCII but '"' and '\\' */
static unsigned char PLAIN[256];

static void init_tables(void) {
    WS[' '] = WS['\t'] = WS['\r'] = 1;
    for (int c = 0x20; c < 0x80; c++) PLAIN[c] = c != '"' && c != '\\';
}

static inline const unsigned char *ws(const unsigned char *p, const unsigned char *end) {
    (void)end; /* stops at the sentinel */
    while (WS[*p]) p++;
    return p;
}

static inline int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* p at the opening quote.  Returns the position after the closing quote or NULL.
 * *esc is set when the string holds an escape. */
static const unsigned char *scan_string(const unsigned char *p, const unsigned char *end,
                                        int *esc) {
    p++;
    *esc = 0;
    while (p < end) {
        while (PLAIN[*p]) p++; /* stops at the sentinel */
        if (p >= end) return NULL;
        unsigned char c = *p;
        if (c == '"') return p + 1;
        if (c < 0x20 || c >= 0x80) return NULL; /* control character or non-ASCII */
        if (c == '\\') {
            *esc = 1;
            if (p + 1 >= end) return NULL;
            c = p[1];
            if (c == 'u') {
                if (p + 6 > end) return NULL;
                int v = 0;
                for (int k = 2; k < 6; k++) {
                    int h = hexval(p[k]);
                    if (h < 0) return NULL;
                    v = v * 16 + h;
                }
                if (v >= 0xD800 && v <= 0xDFFF) return NULL; /* surrogates: Python decides */
                p += 6;
                continue;
            }
            if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' &&
                c != 'r' && c != 't')
                return NULL;
            p += 2;
            continue;
        }
        p++;
    }
    return NULL;
}

/* A JSON number at p.  Returns the position after it or NULL; fills *v when v. */
static const unsigned char *scan_number(const unsigned char *p, const unsigned char *end,
                                        Val *v) {
    const unsigned char *start = p;
    int frac = 0;
    int neg = 0;
    long long acc = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end) return NULL;
    const unsigned char *digits = p;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (*p >= '0' && *p <= '9' && p - digits < MAX_INT_DIGITS) {
            acc = acc * 10 + (*p - '0');
            p++;
        }
        while (*p >= '0' && *p <= '9') p++; /* longer: Python decides if an int */
    } else {
        return NULL;
    }
    if (p < end && *p == '.') {
        frac = 1;
        p++;
        const unsigned char *d = p;
        while (*p >= '0' && *p <= '9') p++;
        if (p == d) return NULL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) return NULL; /* exponents: Python decides */
    Py_ssize_t len = p - start;
    if (len > MAX_NUM_LEN) return NULL;
    if (!frac && len - (*start == '-') > MAX_INT_DIGITS) return NULL;
    if (v != NULL) {
        if (frac) {
            char buf[MAX_NUM_LEN + 1];
            memcpy(buf, start, (size_t)len);
            buf[len] = 0;
            v->kind = V_FLOAT;
            /* Python's own parser: correctly rounded, independent of the C locale */
            v->d = PyOS_string_to_double(buf, NULL, NULL);
            if (v->d == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                return NULL;
            }
        } else {
            v->kind = V_INT;
            v->i = neg ? -acc : acc;
        }
    }
    return p;
}

static const unsigned char *scan_value(Scan *sc, const unsigned char *p, int depth,
                                       int children, Val *v);

/* After a member or an element at p (NULL: it was invalid): a ',' gives the start of the
 * next one (*more = 1), the closing `close` the position after it (*more = 0); anything else
 * NULL. */
static const unsigned char *next_item(const unsigned char *p, const unsigned char *end,
                                      unsigned char close, int *more) {
    *more = 0;
    if (p == NULL) return NULL;
    p = ws(p, end);
    if (p >= end) return NULL;
    if (*p == ',') {
        *more = 1;
        return ws(p + 1, end);
    }
    return *p == close ? p + 1 : NULL;
}

/* p at '{'.  `children`: first tracked node at this level (-1: none). */
static const unsigned char *scan_object(Scan *sc, const unsigned char *p, int depth,
                                        int children) {
    const unsigned char *end = sc->end;
    Program *pg = sc->pg;
    if (depth > MAX_DEPTH) return NULL;
    p = ws(p + 1, end);
    if (p < end && *p == '}') return p + 1;
    for (;;) {
        if (p >= end || *p != '"') return NULL;
        int esc;
        const unsigned char *ks = p + 1;
        const unsigned char *ke = scan_string(p, end, &esc);
        if (ke == NULL || esc) return NULL; /* escaped keys: Python decides */
        Py_ssize_t klen = (ke - 1) - ks;
        int node = -1;
        for (int c = children; c >= 0; c = pg->trie[c].next) {
            TNode *t = &pg->trie[c];
            if (t->len == klen && (klen == 0 || (t->name[0] == (char)ks[0] &&
                                                 memcmp(t->name, ks, (size_t)klen) == 0))) {
                if (t->seen == pg->stamp) return NULL; /* a tracked key twice */
                t->seen = pg->stamp;
                node = c;
                break;
            }
        }
        p = ws(ke, end);
        if (p >= end || *p != ':') return NULL;
        p = ws(p + 1, end);
        if (node >= 0) {
            TNode *t = &pg->trie[node];
            Val *slot = t->slot >= 0 ? &pg->vals[t->slot] : NULL;
            p = scan_value(sc, p, depth + 1, t->first_child, slot);
        } else {
            p = scan_value(sc, p, depth + 1, -1, NULL);
        }
        int more;
        p = next_item(p, end, '}', &more);
        if (p == NULL || !more) return p;
    }
}

static const unsigned char *scan_array(Scan *sc, const unsigned char *p, int depth) {
    const unsigned char *end = sc->end;
    if (depth > MAX_DEPTH) return NULL;
    p = ws(p + 1, end);
    if (p < end && *p == ']') return p + 1;
    for (;;) {
        int more;
        p = next_item(scan_value(sc, p, depth + 1, -1, NULL), end, ']', &more);
        if (p == NULL || !more) return p;
    }
}

static inline int literal(const unsigned char *p, const unsigned char *end, const char *word,
                          Py_ssize_t n) {
    return end - p >= n && memcmp(p, word, (size_t)n) == 0;
}

/* One value at p.  `children`: tracked keys inside it when it is an object; `v`: where to
 * record it (NULL: not tracked). */
static const unsigned char *scan_value(Scan *sc, const unsigned char *p, int depth,
                                       int children, Val *v) {
    const unsigned char *end = sc->end;
    if (p >= end) return NULL;
    switch (*p) {
    case '{':
        if (v != NULL) v->kind = V_OBJ;
        return scan_object(sc, p, depth, children);
    case '[':
        if (v != NULL) v->kind = V_ARR;
        return scan_array(sc, p, depth);
    case '"': {
        int esc;
        const unsigned char *q = scan_string(p, end, &esc);
        if (q != NULL && v != NULL) {
            v->kind = esc ? V_ESTR : V_STR;
            v->s = (const char *)p + 1;
            v->n = (q - 1) - (p + 1);
        }
        return q;
    }
    case 't':
        if (!literal(p, end, "true", 4)) return NULL;
        if (v != NULL) v->kind = V_TRUE;
        return p + 4;
    case 'f':
        if (!literal(p, end, "false", 5)) return NULL;
        if (v != NULL) v->kind = V_FALSE;
        return p + 5;
    case 'n':
        if (!literal(p, end, "null", 4)) return NULL;
        if (v != NULL) v->kind = V_NULL;
        return p + 4;
    default:
        return scan_number(p, end, v);
    }
}

/* ---------------------------------------------------------------- predicates */

static int str_cmp(const char *a, Py_ssize_t an, const char *b, Py_ssize_t bn) {
    Py_ssize_t n = an < bn ? an : bn;
    int c = memcmp(a, b, (size_t)n);
    if (c != 0) return c;
    return an < bn ? -1 : (an > bn ? 1 : 0);
}

static inline int order(int cmp, int c) {
    switch (cmp) {
    case C_EQ: return c == 0;
    case C_NE: return c != 0;
    case C_LT: return c < 0;
    case C_LE: return c <= 0;
    case C_GT: return c > 0;
    default: return c >= 0;
    }
}

static inline int is_null(const Val *v) { return v->kind == V_MISSING || v->kind == V_NULL; }

static PyObject *key_object(const Val *v) {
    switch (v->kind) {
    case V_MISSING:
    case V_NULL: Py_RETURN_NONE;
    case V_TRUE: Py_RETURN_TRUE;
    case V_FALSE: Py_RETURN_FALSE;
    case V_INT: return PyLong_FromLongLong(v->i);
    case V_FLOAT: return PyFloat_FromDouble(v->d);
    case V_STR: return PyUnicode_DecodeASCII(v->s, v->n, NULL);
    default: return NULL; /* objects, arrays, escaped strings: Python decides */
    }
}

/* Whether key k is in `set`, looked up once per line: *hit caches the answer (-1: not looked
 * up yet); a failed look-up counts as "in it" (the caller then decides nothing). */
static int cached_member(PyObject *set, PyObject *k, signed char *hit) {
    if (*hit < 0) {
        int t = PySet_Contains(set, k);
        if (t < 0) {
            PyErr_Clear();
            t = 1;
        }
        *hit = (signed char)t;
    }
    return *hit;
}

static int eval(Program *pg, PyObject **keys, int i) {
    PNode *n = &pg->pn[i];
    Val *v = n->slot >= 0 ? &pg->vals[n->slot] : NULL;
    switch (n->op) {
    case P_CONST:
        return n->value;
    case P_AND:
    case P_OR: { /* Kleene: false (and) / true (or) absorbs, else unknown if any is */
        int absorbing = n->op == P_AND ? R_FALSE : R_TRUE;
        int r = !absorbing;
        for (int k = 0; k < n->n; k++) {
            int x = eval(pg, keys, pg->kids[n->a + k]);
            if (x == absorbing) return absorbing;
            if (x == R_UNKNOWN) r = R_UNKNOWN;
        }
        return r;
    }
    case P_NOT: {
        int x = eval(pg, keys, pg->kids[n->a]);
        return x == R_UNKNOWN ? R_UNKNOWN : !x;
    }
    case P_CMP_STR:
        if (v->kind == V_ESTR) return R_UNKNOWN;
        if (v->kind == V_STR) {
            if (n->cmp == C_EQ || n->cmp == C_NE) {
                int eq = v->n == n->slen && memcmp(v->s, n->s, (size_t)v->n) == 0;
                return n->cmp == C_EQ ? eq : !eq;
            }
            return order(n->cmp, str_cmp(v->s, v->n, n->s, n->slen));
        }
        if (n->cmp == C_NE) return !is_null(v); /* not null and not equal */
        return R_FALSE;
    case P_CMP_NUM: {
        if (v->kind != V_INT && v->kind != V_FLOAT) {
            if (n->cmp == C_NE) return !is_null(v); /* not null, not a number */
            return R_FALSE;
        }
        int c;
        if (v->kind == V_INT && n->is_int) {
            c = v->i < n->li ? -1 : (v->i > n->li ? 1 : 0);
        } else {
            double a, b;
            if (v->kind == V_INT) {
                if (v->i > EXACT_DOUBLE_INT || v->i < -EXACT_DOUBLE_INT) return R_UNKNOWN;
                a = (double)v->i;
            } else {
                a = v->d;
            }
            if (n->is_int) {
                if (n->li > EXACT_DOUBLE_INT || n->li < -EXACT_DOUBLE_INT) return R_UNKNOWN;
                b = (double)n->li;
            } else {
                b = n->ld;
            }
            c = a < b ? -1 : (a > b ? 1 : 0);
        }
        return order(n->cmp, c);
    }
    case P_CMP_BOOL: {
        int want = n->value ? V_TRUE : V_FALSE;
        if (n->cmp == C_EQ) return v->kind == want;
        return !is_null(v) && v->kind != want; /* C_NE */
    }
    case P_TRUTH:
        return v->kind == V_TRUE;
    case P_ISNULL:
        return n->cmp ? !is_null(v) : is_null(v);
    case P_IN_STR: {
        int negated = n->cmp;
        if (is_null(v)) return R_FALSE;
        if (v->kind == V_ESTR) return R_UNKNOWN;
        if (v->kind != V_STR) return negated ? R_TRUE : R_FALSE;
        int hit = 0;
        Py_ssize_t m = PyTuple_GET_SIZE(n->strs);
        for (Py_ssize_t k = 0; k < m; k++) {
            PyObject *b = PyTuple_GET_ITEM(n->strs, k);
            if (PyBytes_GET_SIZE(b) == v->n && memcmp(PyBytes_AS_STRING(b), v->s,
                                                     (size_t)v->n) == 0) {
                hit = 1;
                break;
            }
        }
        return negated ? !hit : hit;
    }
    case P_HELD: {
        PyObject *d = keys[n->value];
        PyObject *touched = pg->touched[n->slot];
        if (PyDict_GET_SIZE(d) == 0 && touched == NULL) return R_FALSE;
        PyObject *k = pg->keyobj[n->slot];
        if (k == NULL) { /* made once per line and slot, shared by every rule */
            k = key_object(v);
            if (k == NULL) {
                PyErr_Clear();
                return R_UNKNOWN;
            }
            pg->keyobj[n->slot] = k;
        }
        /* (each set looked up once per line and slot, shared by every rule) */
        if (touched != NULL && cached_member(touched, k, &pg->touched_hit[n->slot]))
            return R_UNKNOWN; /* a key of the batch: its state may have changed */
        PyObject *hs = pg->holders[n->slot];
        if (hs != NULL && !cached_member(hs, k, &pg->holders_hit[n->slot]))
            return R_FALSE; /* no rule holds the key: one look-up instead of one per rule */
        int r = PyDict_Contains(d, k);
        if (r < 0) {
            PyErr_Clear();
            return R_UNKNOWN;
        }
        return r ? R_TRUE : R_FALSE;
    }
    }
    return R_UNKNOWN;
}

/* ---------------------------------------------------------------- building a program */

static int add_node(Program *pg, int *cap) {
    if (pg->npn == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        PNode *p = PyMem_Realloc(pg->pn, sizeof(PNode) * (size_t)*cap);
        if (p == NULL) return -1;
        pg->pn = p;
    }
    memset(&pg->pn[pg->npn], 0, sizeof(PNode));
    pg->pn[pg->npn].slot = -1;
    return pg->npn++;
}

static int add_kid(Program *pg, int *cap, int node) {
    if (pg->nkids == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        int *p = PyMem_Realloc(pg->kids, sizeof(int) * (size_t)*cap);
        if (p == NULL) return -1;
        pg->kids = p;
    }
    pg->kids[pg->nkids++] = node;
    return 0;
}

static int slot_of(Program *pg, PyObject *o) {
    long s = PyLong_AsLong(o);
    if (s == -1 && PyErr_Occurred()) return -1;
    if (s < 0 || s >= pg->nslots) {
        PyErr_SetString(PyExc_ValueError, "slot out of range");
        return -1;
    }
    return (int)s;
}

static const char *OPS[] = {"==", "!=", "<", "<=", ">", ">="};

static int cmp_of(PyObject *o) {
    const char *s = PyUnicode_AsUTF8(o);
    if (s == NULL) return -1;
    for (int k = 0; k < 6; k++)
        if (strcmp(s, OPS[k]) == 0) return k;
    PyErr_Format(PyExc_ValueError, "unknown comparison %s", s);
    return -1;
}

/* Build the node for predicate tuple `t`; returns its index or -1. */
static int build(Program *pg, PyObject *t, int *pcap, int *kcap, int depth) {
    if (depth > 200) {
        PyErr_SetString(PyExc_ValueError, "predicate nested too deeply");
        return -1;
    }
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < 1) {
        PyErr_SetString(PyExc_TypeError, "a predicate is a non-empty tuple");
        return -1;
    }
    const char *op = PyUnicode_AsUTF8(PyTuple_GET_ITEM(t, 0));
    if (op == NULL) return -1;
    Py_ssize_t size = PyTuple_GET_SIZE(t);
#define NEED(k)                                                                            \
    if (size != (k)) {                                                                     \
        PyErr_Format(PyExc_ValueError, "predicate %s takes %d items", op, (int)(k) - 1); \
        return -1;                                                                         \
    }
    if (strcmp(op, "and") == 0 || strcmp(op, "or") == 0 || strcmp(op, "not") == 0) {
        int is_not = op[0] == 'n';
        NEED(2);
        PyObject *items = PyTuple_GET_ITEM(t, 1);
        if (is_not) {
            int c = build(pg, items, pcap, kcap, depth + 1);
            if (c < 0) return -1;
            int i = add_node(pg, pcap);
            if (i < 0) return -1;
            pg->pn[i].op = P_NOT;
            pg->pn[i].a = pg->nkids;
            pg->pn[i].n = 1;
            return add_kid(pg, kcap, c) < 0 ? -1 : i;
        }
        if (!PyTuple_Check(items)) {
            PyErr_SetString(PyExc_TypeError, "and/or take a tuple of predicates");
            return -1;
        }
        Py_ssize_t m = PyTuple_GET_SIZE(items);
        int *tmp = PyMem_Malloc(sizeof(int) * (size_t)(m ? m : 1));
        if (tmp == NULL) return -1;
        for (Py_ssize_t k = 0; k < m; k++) {
            tmp[k] = build(pg, PyTuple_GET_ITEM(items, k), pcap, kcap, depth + 1);
            if (tmp[k] < 0) {
                PyMem_Free(tmp);
                return -1;
            }
        }
        int i = add_node(pg, pcap);
        if (i < 0) {
            PyMem_Free(tmp);
            return -1;
        }
        pg->pn[i].op = op[0] == 'a' ? P_AND : P_OR;
        pg->pn[i].a = pg->nkids;
        pg->pn[i].n = (int)m;
        for (Py_ssize_t k = 0; k < m; k++) {
            if (add_kid(pg, kcap, tmp[k]) < 0) {
                PyMem_Free(tmp);
                return -1;
            }
        }
        PyMem_Free(tmp);
        return i;
    }
    int i = add_node(pg, pcap);
    if (i < 0) return -1;
    PNode *n = &pg->pn[i];
    if (strcmp(op, "const") == 0) {
        NEED(2);
        long r = PyLong_AsLong(PyTuple_GET_ITEM(t, 1));
        if (r < 0 || r > 2) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "const is 0, 1 or 2");
            return -1;
        }
        n->op = P_CONST;
        n->value = (int)r;
        return i;
    }
    if (strcmp(op, "cmp") == 0) {
        NEED(4);
        int c = cmp_of(PyTuple_GET_ITEM(t, 1));
        if (c < 0) return -1;
        int s = slot_of(pg, PyTuple_GET_ITEM(t, 2));
        if (s < 0) return -1;
        PyObject *lit = PyTuple_GET_ITEM(t, 3);
        n = &pg->pn[i];
        n->cmp = c;
        n->slot = s;
        if (PyBool_Check(lit)) {
            if (c != C_EQ && c != C_NE) {
                PyErr_SetString(PyExc_ValueError, "bools are not ordered");
                return -1;
            }
            n->op = P_CMP_BOOL;
            n->value = lit == Py_True;
        } else if (PyLong_Check(lit)) {
            int overflow = 0;
            long long x = PyLong_AsLongLongAndOverflow(lit, &overflow);
            if (overflow || (x == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                PyErr_SetString(PyExc_ValueError, "integer literal out of range");
                return -1;
            }
            n->op = P_CMP_NUM;
            n->is_int = 1;
            n->li = x;
        } else if (PyFloat_Check(lit)) {
            n->op = P_CMP_NUM;
            n->ld = PyFloat_AS_DOUBLE(lit);
        } else if (PyBytes_Check(lit)) {
            n->op = P_CMP_STR;
            n->s = PyBytes_AS_STRING(lit);
            n->slen = PyBytes_GET_SIZE(lit);
            if (PyList_Append(pg->names, lit) < 0) return -1; /* keep it alive */
        } else {
            PyErr_SetString(PyExc_TypeError, "cmp literal must be bool, int, float or bytes");
            return -1;
        }
        return i;
    }
    if (strcmp(op, "truth") == 0 || strcmp(op, "isnull") == 0 || strcmp(op, "notnull") == 0) {
        NEED(2);
        int s = slot_of(pg, PyTuple_GET_ITEM(t, 1));
        if (s < 0) return -1;
        n = &pg->pn[i];
        n->slot = s;
        n->op = op[0] == 't' ? P_TRUTH : P_ISNULL;
        n->cmp = op[0] == 'n' && op[1] == 'o';
        return i;
    }
    if (strcmp(op, "in") == 0 || strcmp(op, "notin") == 0) {
        NEED(3);
        int s = slot_of(pg, PyTuple_GET_ITEM(t, 1));
        if (s < 0) return -1;
        PyObject *strs = PyTuple_GET_ITEM(t, 2);
        if (!PyTuple_Check(strs)) {
            PyErr_SetString(PyExc_TypeError, "in takes a tuple of bytes");
            return -1;
        }
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(strs); k++) {
            if (!PyBytes_Check(PyTuple_GET_ITEM(strs, k))) {
                PyErr_SetString(PyExc_TypeError, "in takes a tuple of bytes");
                return -1;
            }
        }
        if (PyList_Append(pg->names, strs) < 0) return -1;
        n = &pg->pn[i];
        n->op = P_IN_STR;
        n->slot = s;
        n->cmp = op[0] == 'n';
        n->strs = strs;
        return i;
    }
    if (strcmp(op, "held") == 0) {
        NEED(3);
        int s = slot_of(pg, PyTuple_GET_ITEM(t, 1));
        if (s < 0) return -1;
        long r = PyLong_AsLong(PyTuple_GET_ITEM(t, 2));
        if (r < 0 || r >= PyTuple_GET_SIZE(pg->owners)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "held: no such owner");
            return -1;
        }
        n = &pg->pn[i];
        n->op = P_HELD;
        n->slot = s;
        n->value = (int)r;
        pg->held_slot[s] = 1;
        return i;
    }
#undef NEED
    PyErr_Format(PyExc_ValueError, "unknown predicate %s", op);
    return -1;
}

static void Program_dealloc(Program *pg) {
    Py_XDECREF(pg->names);
    if (pg->keys != NULL && pg->owners != NULL)
        for (Py_ssize_t r = 0; r < PyTuple_GET_SIZE(pg->owners); r++) Py_XDECREF(pg->keys[r]);
    Py_XDECREF(pg->owners);
    PyMem_Free(pg->trie);
    PyMem_Free(pg->pn);
    PyMem_Free(pg->kids);
    PyMem_Free(pg->gates);
    PyMem_Free(pg->vals);
    PyMem_Free(pg->keys);
    PyMem_Free(pg->keyobj);
    PyMem_Free(pg->held_slot);
    PyMem_Free(pg->touched);
    PyMem_Free(pg->touched_hit);
    if (pg->holders != NULL)
        for (int k = 0; k < pg->nslots; k++) Py_XDECREF(pg->holders[k]);
    PyMem_Free(pg->holders);
    PyMem_Free(pg->holders_hit);
    PyMem_Free(pg->found);
    Py_XDECREF(pg->ix_values);
    PyMem_Free(pg->ix_start);
    PyMem_Free(pg->ix_gate);
    PyMem_Free(pg->ix_node);
    PyMem_Free(pg->ix_any);
    PyMem_Free(pg->gx_num_start);
    PyMem_Free(pg->gx_num_slot);
    PyMem_Free(pg->gx_num_above);
    PyMem_Free(pg->gx_num_t);
    PyMem_Free(pg->gx_num_incl);
    PyMem_Free(pg->gx_num_gate);
    PyMem_Free(pg->gx_num_node);
    PyMem_Free(pg->gx_held_start);
    PyMem_Free(pg->gx_held_slot);
    PyMem_Free(pg->gx_held_gate);
    PyMem_Free(pg->gx_held_node);
    Py_TYPE(pg)->tp_free((PyObject *)pg);
}

static PyTypeObject ProgramType;

static int *int_array(PyObject *seq, int limit, int *n) {
    if (!PyTuple_Check(seq)) {
        PyErr_SetString(PyExc_TypeError, "expected a tuple of ints");
        return NULL;
    }
    Py_ssize_t m = PyTuple_GET_SIZE(seq);
    int *out = PyMem_Calloc((size_t)m + 1, sizeof(int));
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t k = 0; k < m; k++) {
        long x = PyLong_AsLong(PyTuple_GET_ITEM(seq, k));
        if (x < 0 || x >= limit) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "gate index out of range");
            PyMem_Free(out);
            return NULL;
        }
        out[k] = (int)x;
    }
    *n = (int)m;
    return out;
}

/* Fewest members of a group worth deciding at once (see Program.gx_*). */
#define MIN_GROUP 4

typedef struct {
    double t;
    int incl, gate, node;
} Threshold;

/* Ascending literal; among equal ones the inclusive (`>=`) first: the gates a number x
 * satisfies (x > t, or x == t when inclusive) are then a prefix. */
static int threshold_order(const void *pa, const void *pb) {
    const Threshold *a = pa, *b = pb;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    return b->incl - a->incl;
}

/* Whether node i orders a number with a literal that a double holds exactly: 1 for `>`/
 * `>=`, -1 for `<`/`<=`, 0 otherwise. */
static int threshold_direction(Program *pg, int i) {
    PNode *n = &pg->pn[i];
    if (n->op != P_CMP_NUM) return 0;
    if (n->is_int && (n->li > EXACT_DOUBLE_INT || n->li < -EXACT_DOUBLE_INT)) return 0;
    if (n->cmp == C_GT || n->cmp == C_GE) return 1;
    if (n->cmp == C_LT || n->cmp == C_LE) return -1;
    return 0;
}

/* Split each index entry's gates into the thresholds group, the key look-up group (each
 * the largest such set on one slot, if it has MIN_GROUP members) and the rest. */
static int group_index(Program *pg) {
    int ne = pg->ix_n, total = pg->ix_start[ne], ns = pg->nslots;
    pg->gx_num_start = PyMem_Calloc((size_t)ne + 1, sizeof(int));
    pg->gx_num_slot = PyMem_Calloc((size_t)ne + 1, sizeof(int));
    pg->gx_num_above = PyMem_Calloc((size_t)ne + 1, 1);
    pg->gx_num_t = PyMem_Calloc((size_t)total + 1, sizeof(double));
    pg->gx_num_incl = PyMem_Calloc((size_t)total + 1, 1);
    pg->gx_num_gate = PyMem_Calloc((size_t)total + 1, sizeof(int));
    pg->gx_num_node = PyMem_Calloc((size_t)total + 1, sizeof(int));
    pg->gx_held_start = PyMem_Calloc((size_t)ne + 1, sizeof(int));
    pg->gx_held_slot = PyMem_Calloc((size_t)ne + 1, sizeof(int));
    pg->gx_held_gate = PyMem_Calloc((size_t)total + 1, sizeof(int));
    pg->gx_held_node = PyMem_Calloc((size_t)total + 1, sizeof(int));
    int *count = PyMem_Calloc((size_t)ns * 3 + 1, sizeof(int));
    Threshold *tmp = PyMem_Calloc((size_t)total + 1, sizeof(Threshold));
    if (pg->gx_num_start == NULL || pg->gx_num_slot == NULL || pg->gx_num_above == NULL ||
        pg->gx_num_t == NULL || pg->gx_num_incl == NULL || pg->gx_num_gate == NULL ||
        pg->gx_num_node == NULL || pg->gx_held_start == NULL || pg->gx_held_slot == NULL ||
        pg->gx_held_gate == NULL || pg->gx_held_node == NULL || count == NULL || tmp == NULL) {
        PyMem_Free(count);
        PyMem_Free(tmp);
        PyErr_NoMemory();
        return -1;
    }
    int rest = 0, nnum = 0, nheld = 0;
    for (int e = 0; e < ne; e++) {
        int a = pg->ix_start[e], b = pg->ix_start[e + 1];
        /* count[3s]: `>` on slot s, count[3s+1]: `<`, count[3s+2]: `held` of s */
        memset(count, 0, sizeof(int) * (size_t)ns * 3);
        for (int k = a; k < b; k++) {
            PNode *n = &pg->pn[pg->ix_node[k]];
            int dir = threshold_direction(pg, pg->ix_node[k]);
            if (dir != 0) count[3 * n->slot + (dir > 0 ? 0 : 1)]++;
            else if (n->op == P_HELD) count[3 * n->slot + 2]++;
        }
        int num = -1, held = -1; /* the chosen counter, or -1 */
        for (int c = 0; c < 3 * ns; c++) {
            int *best = c % 3 == 2 ? &held : &num;
            if (count[c] >= MIN_GROUP && (*best < 0 || count[c] > count[*best])) *best = c;
        }
        pg->gx_num_start[e] = nnum;
        pg->gx_held_start[e] = nheld;
        pg->gx_num_slot[e] = num >= 0 ? num / 3 : -1;
        pg->gx_num_above[e] = num >= 0 && num % 3 == 0;
        pg->gx_held_slot[e] = held >= 0 ? held / 3 : -1;
        int m = 0;
        pg->ix_start[e] = rest;
        for (int k = a; k < b; k++) { /* (rest <= k: compacted in place) */
            int g = pg->ix_gate[k], i = pg->ix_node[k];
            PNode *n = &pg->pn[i];
            int dir = threshold_direction(pg, i);
            if (num >= 0 && dir != 0 && 3 * n->slot + (dir > 0 ? 0 : 1) == num) {
                tmp[m].t = dir > 0 ? (n->is_int ? (double)n->li : n->ld)
                                   : -(n->is_int ? (double)n->li : n->ld);
                tmp[m].incl = n->cmp == C_GE || n->cmp == C_LE;
                tmp[m].gate = g;
                tmp[m].node = i;
                m++;
            } else if (held >= 0 && n->op == P_HELD && 3 * n->slot + 2 == held) {
                pg->gx_held_gate[nheld] = g;
                pg->gx_held_node[nheld] = i;
                nheld++;
            } else {
                pg->ix_gate[rest] = g;
                pg->ix_node[rest] = i;
                rest++;
            }
        }
        qsort(tmp, (size_t)m, sizeof(Threshold), threshold_order);
        for (int k = 0; k < m; k++, nnum++) {
            pg->gx_num_t[nnum] = tmp[k].t;
            pg->gx_num_incl[nnum] = (unsigned char)tmp[k].incl;
            pg->gx_num_gate[nnum] = tmp[k].gate;
            pg->gx_num_node[nnum] = tmp[k].node;
        }
    }
    pg->ix_start[ne] = rest;
    pg->gx_num_start[ne] = nnum;
    pg->gx_held_start[ne] = nheld;
    PyMem_Free(count);
    PyMem_Free(tmp);
    return 0;
}

/* index = (slot, ((value bytes, ((gate, predicate), ...)), ...), (gate, ...)) */
static int build_index(Program *pg, PyObject *index, int *pcap, int *kcap) {
    PyObject *entries, *any;
    int slot;
    if (!PyArg_ParseTuple(index, "iO!O!:index", &slot, &PyTuple_Type, &entries, &PyTuple_Type,
                          &any))
        return -1;
    if (slot < 0 || slot >= pg->nslots) {
        PyErr_SetString(PyExc_ValueError, "index slot out of range");
        return -1;
    }
    Py_ssize_t ne = PyTuple_GET_SIZE(entries);
    pg->ix_values = PyTuple_New(ne);
    pg->ix_start = PyMem_Calloc((size_t)ne + 1, sizeof(int));
    if (pg->ix_values == NULL || pg->ix_start == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t total = 0;
    for (Py_ssize_t e = 0; e < ne; e++) {
        PyObject *entry = PyTuple_GET_ITEM(entries, e);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 ||
            !PyBytes_Check(PyTuple_GET_ITEM(entry, 0)) ||
            !PyTuple_Check(PyTuple_GET_ITEM(entry, 1))) {
            PyErr_SetString(PyExc_TypeError, "index entries are (bytes, ((gate, pred), ...))");
            return -1;
        }
        total += PyTuple_GET_SIZE(PyTuple_GET_ITEM(entry, 1));
    }
    pg->ix_gate = PyMem_Calloc((size_t)total + 1, sizeof(int));
    pg->ix_node = PyMem_Calloc((size_t)total + 1, sizeof(int));
    if (pg->ix_gate == NULL || pg->ix_node == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int at = 0;
    for (Py_ssize_t e = 0; e < ne; e++) {
        PyObject *entry = PyTuple_GET_ITEM(entries, e);
        PyObject *value = PyTuple_GET_ITEM(entry, 0);
        Py_INCREF(value);
        PyTuple_SET_ITEM(pg->ix_values, e, value);
        pg->ix_start[e] = at;
        PyObject *pairs = PyTuple_GET_ITEM(entry, 1);
        int prev = -1;
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(pairs); k++) {
            PyObject *pair = PyTuple_GET_ITEM(pairs, k);
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
                PyErr_SetString(PyExc_TypeError, "index pairs are (gate, predicate)");
                return -1;
            }
            long g = PyLong_AsLong(PyTuple_GET_ITEM(pair, 0));
            if (g <= prev || g >= pg->ngates) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "index gates must ascend and exist");
                return -1;
            }
            prev = (int)g;
            int node = build(pg, PyTuple_GET_ITEM(pair, 1), pcap, kcap, 0);
            if (node < 0) return -1;
            pg->ix_gate[at] = (int)g;
            pg->ix_node[at] = node;
            at++;
        }
    }
    pg->ix_start[ne] = at;
    pg->ix_any = int_array(any, pg->ngates, &pg->ix_nany);
    if (pg->ix_any == NULL) return -1;
    for (int k = 1; k < pg->ix_nany; k++) {
        if (pg->ix_any[k] <= pg->ix_any[k - 1]) {
            PyErr_SetString(PyExc_ValueError, "index gates must ascend");
            return -1;
        }
    }
    pg->ix_n = (int)ne;
    pg->ix_slot = slot;
    return group_index(pg);
}

/* Program(paths, time_slot, owners, gates[, index[, holders]]) */
static PyObject *Program_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *paths, *owners, *gates, *index = Py_None, *holders = Py_None;
    int time_slot;
    if (!PyArg_ParseTuple(args, "O!iO!O!|OO:Program", &PyTuple_Type, &paths, &time_slot,
                          &PyTuple_Type, &owners, &PyTuple_Type, &gates, &index, &holders))
        return NULL;
    Program *pg = (Program *)type->tp_alloc(type, 0);
    if (pg == NULL) return NULL;
    pg->root = -1;
    pg->ix_slot = -1;
    pg->names = PyList_New(0);
    if (pg->names == NULL) goto fail;
    Py_INCREF(owners);
    pg->owners = owners;
    pg->keys = PyMem_Calloc((size_t)PyTuple_GET_SIZE(owners) + 1, sizeof(PyObject *));
    if (pg->keys == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    pg->nslots = (int)PyTuple_GET_SIZE(paths);
    if (time_slot < 0 || time_slot >= pg->nslots) {
        PyErr_SetString(PyExc_ValueError, "time slot out of range");
        goto fail;
    }
    pg->time_slot = time_slot;
    pg->vals = PyMem_Calloc((size_t)pg->nslots, sizeof(Val));
    pg->keyobj = PyMem_Calloc((size_t)pg->nslots, sizeof(PyObject *));
    pg->held_slot = PyMem_Calloc((size_t)pg->nslots, 1);
    pg->touched = PyMem_Calloc((size_t)pg->nslots, sizeof(PyObject *));
    pg->touched_hit = PyMem_Calloc((size_t)pg->nslots, 1);
    pg->holders = PyMem_Calloc((size_t)pg->nslots, sizeof(PyObject *));
    pg->holders_hit = PyMem_Calloc((size_t)pg->nslots, 1);
    if (pg->vals == NULL || pg->keyobj == NULL || pg->held_slot == NULL || pg->touched == NULL ||
        pg->touched_hit == NULL || pg->holders == NULL || pg->holders_hit == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    if (holders != Py_None) { /* per slot a set (kept, and filled by the caller) or None */
        if (!PyTuple_Check(holders) || PyTuple_GET_SIZE(holders) != pg->nslots) {
            PyErr_SetString(PyExc_ValueError, "holders: one set or None per slot");
            goto fail;
        }
        for (int k = 0; k < pg->nslots; k++) {
            PyObject *h = PyTuple_GET_ITEM(holders, k);
            if (h == Py_None) continue;
            if (!PySet_Check(h)) {
                PyErr_SetString(PyExc_TypeError, "holders: one set or None per slot");
                goto fail;
            }
            Py_INCREF(h);
            pg->holders[k] = h;
        }
    }
    /* the trie, built level by level with explicit parent links */
    int tcap = 0;
    for (Py_ssize_t s = 0; s < PyTuple_GET_SIZE(paths); s++) {
        PyObject *path = PyTuple_GET_ITEM(paths, s);
        if (!PyTuple_Check(path)) {
            PyErr_SetString(PyExc_TypeError, "a path is a tuple of str");
            goto fail;
        }
        if (PyList_Append(pg->names, path) < 0) goto fail;
        Py_ssize_t m = PyTuple_GET_SIZE(path);
        if (m < 1) {
            PyErr_SetString(PyExc_ValueError, "empty field path");
            goto fail;
        }
        int parent = -1;
        int node = -1;
        for (Py_ssize_t k = 0; k < m; k++) {
            Py_ssize_t len;
            const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(path, k), &len);
            if (name == NULL) goto fail;
            int first = parent < 0 ? pg->root : pg->trie[parent].first_child;
            node = -1;
            for (int c = first; c >= 0; c = pg->trie[c].next) {
                if (pg->trie[c].len == len && memcmp(pg->trie[c].name, name, (size_t)len) == 0) {
                    node = c;
                    break;
                }
            }
            if (node < 0) {
                if (pg->ntrie == tcap) {
                    tcap = tcap ? tcap * 2 : 8;
                    TNode *t = PyMem_Realloc(pg->trie, sizeof(TNode) * (size_t)tcap);
                    if (t == NULL) {
                        PyErr_NoMemory();
                        goto fail;
                    }
                    pg->trie = t;
                }
                node = pg->ntrie++;
                TNode *t = &pg->trie[node];
                t->name = name;
                t->len = len;
                t->slot = -1;
                t->first_child = -1;
                t->seen = 0;
                if (parent < 0) {
                    t->next = pg->root;
                    pg->root = node;
                } else {
                    t->next = pg->trie[parent].first_child;
                    pg->trie[parent].first_child = node;
                }
            }
            parent = node;
        }
        if (pg->trie[node].slot >= 0) {
            PyErr_SetString(PyExc_ValueError, "the same path twice");
            goto fail;
        }
        pg->trie[node].slot = (int)s;
    }
    /* each owner's `keys` dict, held from here on: a rule's state dict is never rebound */
    for (Py_ssize_t r = 0; r < PyTuple_GET_SIZE(owners); r++) {
        PyObject *keys = PyObject_GetAttrString(PyTuple_GET_ITEM(owners, r), "keys");
        if (keys == NULL) goto fail;
        pg->keys[r] = keys;
        if (!PyDict_Check(keys)) {
            PyErr_SetString(PyExc_TypeError, "an owner's keys must be a dict");
            goto fail;
        }
    }
    int pcap = 0, kcap = 0;
    pg->ngates = (int)PyTuple_GET_SIZE(gates);
    pg->gates = PyMem_Calloc((size_t)(pg->ngates ? pg->ngates : 1), sizeof(int));
    pg->found = PyMem_Calloc((size_t)(pg->ngates ? pg->ngates : 1), sizeof(int));
    if (pg->gates == NULL || pg->found == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (int g = 0; g < pg->ngates; g++) {
        int i = build(pg, PyTuple_GET_ITEM(gates, g), &pcap, &kcap, 0);
        if (i < 0) goto fail;
        pg->gates[g] = i;
    }
    if (index != Py_None && build_index(pg, index, &pcap, &kcap) < 0) goto fail;
    return (PyObject *)pg;
fail:
    Py_DECREF(pg);
    return NULL;
}

/* Where the index applies to the current line: the index entry of its value (-1: a value
 * not in the index); -2 when it does not apply. */
static int index_entry(Program *pg) {
    if (pg->ix_slot < 0) return -2;
    Val *iv = &pg->vals[pg->ix_slot];
    if (iv->kind != V_STR) return -2;
    for (int e = 0; e < pg->ix_n; e++) {
        PyObject *b = PyTuple_GET_ITEM(pg->ix_values, e);
        if (PyBytes_GET_SIZE(b) == iv->n &&
            memcmp(PyBytes_AS_STRING(b), iv->s, (size_t)iv->n) == 0)
            return e;
    }
    return -1;
}

/* For the key look-up group of slot s (Program.gx_held_*): R_FALSE when every member is
 * certainly false (no rule sharing the holders holds the key, and it is not a key of the
 * batch), R_UNKNOWN when every member is unknown (a key of the batch), -1 when each must be
 * tested.  Each member would find the same in eval(), whose look-ups this one caches. */
static int held_all(Program *pg, int s) {
    PyObject *touched = pg->touched[s], *hs = pg->holders[s];
    if (touched == NULL && hs == NULL) return -1;
    PyObject *k = pg->keyobj[s];
    if (k == NULL) {
        k = key_object(&pg->vals[s]);
        if (k == NULL) {
            PyErr_Clear();
            return -1;
        }
        pg->keyobj[s] = k;
    }
    if (touched != NULL && cached_member(touched, k, &pg->touched_hit[s])) return R_UNKNOWN;
    if (hs != NULL && !cached_member(hs, k, &pg->holders_hit[s])) return R_FALSE;
    return -1;
}

/* Index entry e's thresholds group (Program.gx_num_*): appends the gates that hold to
 * pg->found from *found (as wanting() lists them). */
static void thresholds_holding(Program *pg, PyObject **keys, int e, int *found) {
    int a = pg->gx_num_start[e], b = pg->gx_num_start[e + 1];
    if (a == b) return;
    Val *v = &pg->vals[pg->gx_num_slot[e]];
    double x;
    if (v->kind == V_FLOAT) {
        x = v->d;
    } else if (v->kind == V_INT && v->i <= EXACT_DOUBLE_INT && v->i >= -EXACT_DOUBLE_INT) {
        x = (double)v->i;
    } else if (v->kind == V_INT) { /* beyond a double's integers: each as eval() decides */
        for (int k = a; k < b; k++) {
            int r = eval(pg, keys, pg->gx_num_node[k]);
            if (r != R_FALSE) pg->found[(*found)++] = 2 * pg->gx_num_gate[k] + (r == R_TRUE);
        }
        return;
    } else {
        return; /* ordering anything but a number is false */
    }
    if (!pg->gx_num_above[e]) x = -x; /* (x < t is -x > -t) */
    const double *t = pg->gx_num_t;
    const unsigned char *incl = pg->gx_num_incl;
    int lo = a, hi = b; /* members [a, lo) hold, [hi, b) do not */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (t[mid] < x || (t[mid] == x && incl[mid])) lo = mid + 1;
        else hi = mid;
    }
    for (int k = a; k < lo; k++) pg->found[(*found)++] = 2 * pg->gx_num_gate[k] + 1;
}

/* Which gates want the current line (are not certainly false), in rule order: 0 when none
 * does, 1 with a new tuple of them in *gates, -1 on error.  Gate g is listed as 2g + 1 when
 * it is certainly true, 2g when unknown.  `entry` from index_entry. */
static int wanting(Program *pg, PyObject **keys, int entry, PyObject **gates) {
    *gates = NULL;
    int n, *gate, *node;
    int *any = pg->ix_any;
    if (entry >= 0) {
        n = pg->ix_start[entry + 1] - pg->ix_start[entry];
        gate = pg->ix_gate + pg->ix_start[entry];
        node = pg->ix_node + pg->ix_start[entry];
    } else {
        n = entry == -1 ? pg->ix_nany : pg->ngates;
        gate = NULL;
        node = NULL;
    }
    int found = 0;
    for (int k = 0; k < n; k++) {
        int g, root;
        if (node != NULL) {
            g = gate[k];
            root = node[k];
        } else {
            g = entry == -1 ? any[k] : k;
            root = pg->gates[g];
        }
        int r = eval(pg, keys, root);
        if (r != R_FALSE) pg->found[found++] = 2 * g + (r == R_TRUE);
    }
    if (entry >= 0) {
        thresholds_holding(pg, keys, entry, &found);
        int a = pg->gx_held_start[entry], b = pg->gx_held_start[entry + 1];
        if (a < b) {
            int all = held_all(pg, pg->gx_held_slot[entry]);
            for (int k = a; all != R_FALSE && k < b; k++) {
                int r = all == R_UNKNOWN ? R_UNKNOWN : eval(pg, keys, pg->gx_held_node[k]);
                if (r != R_FALSE) pg->found[found++] = 2 * pg->gx_held_gate[k] + (r == R_TRUE);
            }
        }
        for (int k = 1; k < found; k++) { /* into rule order (each part is nearly so) */
            int g = pg->found[k], j = k;
            while (j > 0 && pg->found[j - 1] > g) {
                pg->found[j] = pg->found[j - 1];
                j--;
            }
            pg->found[j] = g;
        }
    }
    if (found == 0) return 0;
    PyObject *t = PyTuple_New(found);
    if (t == NULL) return -1;
    for (int k = 0; k < found; k++) {
        PyObject *x = PyLong_FromLong(pg->found[k]);
        if (x == NULL) {
            Py_DECREF(t);
            return -1;
        }
        PyTuple_SET_ITEM(t, k, x);
    }
    *gates = t;
    return 1;
}

/* ---------------------------------------------------------------- skip() */

/* The scanning loop of skip() and batch().
 *
 * Passes over the lines from `*pos` that certainly change nothing (see skip()), counting
 * them in `*skipped` and raising `*last`.  Without `batch` it stops at the first other
 * line.  With `batch` (a list), an in-order line some gates want is appended to it as
 * (skipped_before, start, end, time, gates, last_before) and the scan goes on: its keys
 * join the program's `touched` sets, so a later line with one of them is wanted by every
 * gate that looks that key up (its state may change when the caller handles the batch); `*skipped`
 * then counts the lines since the last entry.  The batch ends at a line whose time passes
 * `due` or exceeds the first entry's time by more than `horizon` (both reported as a tick:
 * the caller handles the batch, fires timers up to that time and calls again from that
 * line), at a wanted line when the batch holds `cap` entries or the line's key cannot be
 * tracked (reported as a wanted line), and wherever skip() stops.
 *
 * Returns 0, or -1 with an exception set; `*stop_time`/`*stop_gates` describe the line at
 * `*pos` as skip() does (new references, or NULL for None). */
static int scan_lines(Program *pg, const unsigned char *base, Py_ssize_t total, Py_ssize_t *pos,
                      long long *last, long long due, Py_ssize_t max_bytes, long long horizon,
                      Py_ssize_t cap, PyObject *batch, Py_ssize_t *skipped,
                      PyObject **stop_time, PyObject **stop_gates) {
    PyObject **keys = pg->keys;
    long long first = 0;
    *stop_time = NULL;
    *stop_gates = NULL;
    Scan sc;
    sc.pg = pg;
    while (*pos <= total) {
        const unsigned char *line = base + *pos;
        const unsigned char *nl = *pos < total ? memchr(line, '\n', (size_t)(total - *pos))
                                               : NULL;
        const unsigned char *end = nl != NULL ? nl : base + total;
        if (end - line > max_bytes) break;
        pg->stamp++;
        if (pg->stamp == 0) { /* wrapped: forget every old stamp */
            for (int t = 0; t < pg->ntrie; t++) pg->trie[t].seen = 0;
            pg->stamp = 1;
        }
        memset(pg->vals, 0, sizeof(Val) * (size_t)pg->nslots);
        memset(pg->touched_hit, -1, (size_t)pg->nslots);
        memset(pg->holders_hit, -1, (size_t)pg->nslots);
        sc.end = end;
        const unsigned char *p = ws(line, end);
        if (p >= end || *p != '{') break;
        p = scan_object(&sc, p, 1, pg->root);
        if (p == NULL) break;
        if (ws(p, end) != end) break;
        Val *tv = &pg->vals[pg->time_slot];
        if (tv->kind != V_INT || tv->i < *last) break;
        long long ts = tv->i;
        Py_ssize_t n_batch = batch != NULL ? PyList_GET_SIZE(batch) : 0;
        if (ts > due || (n_batch > 0 && ts - first > horizon)) {
            *stop_time = PyLong_FromLongLong(ts);
            return *stop_time == NULL ? -1 : 0;
        }
        PyObject *gates;
        int wanted = wanting(pg, keys, index_entry(pg), &gates);
        if (wanted < 0) goto fail;
        if (!wanted) {
            for (int k = 0; k < pg->nslots; k++) Py_CLEAR(pg->keyobj[k]);
            *last = ts;
            (*skipped)++;
            *pos = (end - base) + 1;
            continue;
        }
        int keep = batch != NULL && n_batch < cap;
        for (int k = 0; keep && k < pg->nslots; k++) {
            if (!pg->held_slot[k]) continue;
            if (pg->keyobj[k] == NULL) pg->keyobj[k] = key_object(&pg->vals[k]);
            if (pg->keyobj[k] == NULL) { /* not a plain value: leave the line to the caller */
                PyErr_Clear();
                keep = 0;
            }
        }
        if (!keep) {
            for (int k = 0; k < pg->nslots; k++) Py_CLEAR(pg->keyobj[k]);
            *stop_time = PyLong_FromLongLong(ts);
            if (*stop_time == NULL) {
                Py_DECREF(gates);
                return -1;
            }
            *stop_gates = gates;
            return 0;
        }
        for (int k = 0; k < pg->nslots; k++) {
            if (!pg->held_slot[k]) continue;
            if (pg->touched[k] == NULL && (pg->touched[k] = PySet_New(NULL)) == NULL) {
                Py_DECREF(gates);
                goto fail;
            }
            if (PySet_Add(pg->touched[k], pg->keyobj[k]) < 0) {
                Py_DECREF(gates);
                goto fail;
            }
        }
        PyObject *item = Py_BuildValue("nnnLNL", *skipped, *pos, (Py_ssize_t)(end - base), ts,
                                       gates, *last);
        if (item == NULL || PyList_Append(batch, item) < 0) {
            Py_XDECREF(item);
            goto fail;
        }
        Py_DECREF(item);
        if (n_batch == 0) first = ts;
        for (int k = 0; k < pg->nslots; k++) Py_CLEAR(pg->keyobj[k]);
        *last = ts;
        *skipped = 0;
        *pos = (end - base) + 1;
    }
    return 0;
fail:
    for (int k = 0; k < pg->nslots; k++) Py_CLEAR(pg->keyobj[k]);
    return -1;
}

static PyObject *none_if_null(PyObject *x) {
    if (x == NULL) Py_RETURN_NONE;
    return x;
}

/* skip(program, chunk, pos, last, due, max_bytes) -> (pos, skipped, last, time, gates)
 *
 * chunk: lines separated by b"\n" (the last one has no newline), a bytes object; pos: start
 * of a line (0 <= pos <= len(chunk)); last: largest event time seen so far (ms); due: no
 * event with a larger time may be skipped (the earliest timer deadline, rounded down);
 * max_bytes: longer lines are left to Python.  Returns the start of the first line not
 * skipped (len(chunk)+1 when every line was), how many lines were skipped, the new largest
 * event time, and why it stopped: `time` is the event time of the line at pos when that line
 * is a valid event in order, else None; `gates` is then the tuple of the gates that want it
 * (not certainly false, in rule order; gate g as 2g + 1 when certainly true, 2g when
 * unknown), or None when it was not skipped only because its time passes `due` (the caller
 * fires the timers up to it and calls again from the same line). */
static PyObject *skip(PyObject *self, PyObject *args) {
    Program *pg;
    PyObject *chunk;
    Py_ssize_t pos, max_bytes, skipped = 0;
    long long last, due;
    if (!PyArg_ParseTuple(args, "O!SnLLn:skip", &ProgramType, &pg, &chunk, &pos, &last, &due,
                          &max_bytes))
        return NULL;
    if (pos < 0) pos = 0;
    PyObject *time, *gates;
    /* bytes, for the NUL after the data (see ws()) */
    if (scan_lines(pg, (const unsigned char *)PyBytes_AS_STRING(chunk), PyBytes_GET_SIZE(chunk),
                   &pos, &last, due, max_bytes, 0, 0, NULL, &skipped, &time, &gates) < 0)
        return NULL;
    return Py_BuildValue("nnLNN", pos, skipped, last, none_if_null(time), none_if_null(gates));
}

/* batch(program, chunk, pos, last, due, max_bytes, horizon, cap)
 *     -> (pos, batch, skipped, last, time, gates)
 *
 * skip() that goes on past wanted lines: `batch` lists them in order as (skipped_before,
 * start, end, time, gates, last_before) — `skipped_before` lines passed over just before the
 * one at chunk[start:end], `last_before` the largest event time before it — and `skipped`
 * counts the lines passed over after the last of them.
 * `horizon` (ms): no timer created while the batch is handled can be due before the first
 * entry's time + horizon.  See scan_lines() for where a batch ends. */
static PyObject *batch(PyObject *self, PyObject *args) {
    Program *pg;
    PyObject *chunk;
    Py_ssize_t pos, max_bytes, cap, skipped = 0;
    long long last, due, horizon;
    if (!PyArg_ParseTuple(args, "O!SnLLnLn:batch", &ProgramType, &pg, &chunk, &pos, &last,
                          &due, &max_bytes, &horizon, &cap))
        return NULL;
    if (pos < 0) pos = 0;
    if (horizon < 0) horizon = 0;
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    PyObject *time, *gates;
    int rc = scan_lines(pg, (const unsigned char *)PyBytes_AS_STRING(chunk),
                        PyBytes_GET_SIZE(chunk), &pos, &last, due, max_bytes, horizon, cap,
                        list, &skipped, &time, &gates);
    for (int k = 0; k < pg->nslots; k++) Py_CLEAR(pg->touched[k]);
    if (rc < 0) {
        Py_DECREF(list);
        return NULL;
    }
    return Py_BuildValue("nNnLNN", pos, list, skipped, last, none_if_null(time),
                         none_if_null(gates));
}

static PyTypeObject ProgramType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cep._prescan.Program",
    .tp_basicsize = sizeof(Program),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Program_new,
    .tp_dealloc = (destructor)Program_dealloc,
    .tp_doc = "Program(paths, time_slot, owners, gates[, index[, holders]]): tracked field "
              "paths (tuples of str; slot i is paths[i]), the slot of the event time, objects "
              "whose `keys` dict is a rule's per-key state, one predicate tuple per rule, an "
              "optional index (slot, ((value, ((gate, predicate), ...)), ...), (gate, ...)): "
              "when the slot holds the plain string `value` only the gates listed for it can "
              "hold, each decided by the predicate given there (the gate's, specialised to "
              "that value); for any other plain string only the last gates can; and optional "
              "holders, per slot a set or None: a set holds at least every key that any "
              "owner whose `held` tests look that slot up holds state for, so a key not in it "
              "is held by none of them (see cep/operator/prescan.py).",
};

static PyMethodDef methods[] = {
    {"batch", batch, METH_VARARGS,
     "batch(program, chunk, pos, last, due, max_bytes, horizon, cap)\n"
     "    -> (pos, batch, skipped, last, time, gates)\n\n"
     "skip() that goes on past in-order lines some gates want, listing them (at most `cap`) "
     "as (skipped_before, start, end, time, gates, last_before); a later line with the key "
     "of one of them is wanted by every gate that looks that key up.  The batch ends at a line whose "
     "time passes `due` or the first entry's time + `horizon` (ms), reported as skip() "
     "reports a line past `due`; a wanted line that cannot join it is reported as skip() "
     "reports a wanted line."},
    {"skip", skip, METH_VARARGS,
     "skip(program, chunk, pos, last, due, max_bytes) -> (pos, skipped, last, time, gates)\n\n"
     "Pass over the lines of `chunk` from `pos` on that certainly change nothing: valid "
     "JSON objects whose integer event time t has last <= t <= due and for which every "
     "gate of `program` is false.  Stops at the first other line; `time` is its event time "
     "when it is a valid event in order (else None), `gates` the gates that want it, or None "
     "when only its time passing `due` stopped the scan."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "cep._prescan",
    "Skip, in C, the JSON lines that no rule wants (see cep/operator/prescan.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__prescan(void) {
    init_tables();
    if (PyType_Ready(&ProgramType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&ProgramType);
    if (PyModule_AddObject(m, "Program", (PyObject *)&ProgramType) < 0) {
        Py_DECREF(&ProgramType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
