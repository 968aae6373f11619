/* recur.h: the C API for hosts that embed recur (tensors, autograd and recurrent models
 * scripted in Lua 5.4).
 *
 * A host creates a runtime (one Lua state with recur loaded, plus its tensor memory), runs a
 * script in it, and calls the script's functions with numbers, strings and float arrays; it
 * reads numbers, strings and tensors back. docs/embedding.md shows the ten lines a host needs.
 *
 * Rules that hold for every function here:
 *  - Every function returns a status: RECUR_OK (0) or one of RECUR_ERR_*. None aborts, exits
 *    or longjmps into the host, whatever the script does; after an error the message (with a
 *    Lua traceback when there is one) is in recur_last_error().
 *  - No global state: runtimes are independent. Two runtimes may run at the same time in two
 *    threads; one runtime must be used by one thread at a time.
 *  - Results of the last run or call stay readable (recur_result_*) until the next run, call or
 *    checkpoint load on the same runtime; a string pointer from recur_result_string stays valid
 *    as long.
 *  - Indices of results start at 1, like Lua's.
 *
 * Build: cc host.c $(pkg-config --cflags --libs recur)
 * API version 1: later versions only add functions, status codes and trailing option fields
 * (recur_options_init fills them). */
#ifndef RECUR_H
#define RECUR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h> /* strlen, for RECUR_STR */

#ifdef __cplusplus
extern "C" {
#endif

#define RECUR_API_VERSION 1
#define RECUR_MAX_DIM 8   /* most dimensions a tensor may have */
#define RECUR_MAX_ARGS 32 /* most arguments one call may pass */

/* ---- status codes ---- */
enum {
  RECUR_OK = 0,
  RECUR_ERR_ARGUMENT = 1,    /* the host passed something invalid (NULL, bad index or shape) */
  RECUR_ERR_MEMORY = 2,      /* the memory limit was exceeded (or the process is out of memory) */
  RECUR_ERR_BUDGET = 3,      /* the call used up its instruction budget */
  RECUR_ERR_SYNTAX = 4,      /* a script does not compile */
  RECUR_ERR_FILE = 5,        /* a file cannot be opened or read */
  RECUR_ERR_SCRIPT = 6,      /* the script raised an error */
  RECUR_ERR_TYPE = 7,        /* a value is not of the type asked for */
  RECUR_ERR_NOT_FOUND = 8,   /* no such function, global or result */
  RECUR_ERR_UNSUPPORTED = 9, /* not available in this build (e.g. no checkpoint loader) */
  RECUR_ERR_BUSY = 10,       /* the runtime was entered while it runs a call */
  RECUR_ERR_BROKEN = 11      /* the runtime cannot go on safely; only recur_free works */
};

/* ---- runtime ---- */
typedef struct recur_runtime recur_runtime;

typedef struct recur_options {
  /* Bytes of Lua's heap and tensor storage together; 0 = no limit. Going over it is a Lua
   * error in the script ("memory limit exceeded"); the host and the runtime carry on. The
   * runtime itself needs about 100 KB. */
  size_t memory_limit;
  /* Work one call (or run) may do: Lua VM instructions, plus tensor work at about one unit
   * per 16 floats touched or 64 multiply-adds; 0 = no limit. Past it the call fails with
   * RECUR_ERR_BUDGET ("instruction budget exceeded"); the next call starts afresh. */
  uint64_t instruction_budget;
  /* 1 (the default): scripts cannot reach io, os (except os.clock and os.time), debug,
   * package.loadlib, C modules, binary chunks or string.dump; require finds recur's modules,
   * modules added with recur_add_module, and Lua files under module_path. 0: the full
   * standard library (trusted scripts only). */
  int sandbox;
  /* BLAS threads; 0 leaves the current setting. OpenBLAS keeps one setting per process, so
   * the last runtime to set it wins (it is set again when a call starts). */
  int threads;
  /* Sandbox: where require finds host-allowed pure Lua modules, e.g. "mods/?.lua;mods/?/init.lua"
   * (module names are restricted to letters, digits, '_', '-' and '.'). NULL: none. Without
   * the sandbox, package.path is used as usual. */
  const char *module_path;
  /* Wall-clock time one call (or run) may take, in milliseconds; 0 = no limit. A second line
   * behind the instruction budget, checked where the budget is (every 1000 Lua instructions),
   * so work inside one C function is not interrupted. Past it the call fails with
   * RECUR_ERR_BUDGET ("time limit exceeded"). */
  uint64_t time_limit_ms;
  /* Where print writes, in the sandbox (and without it, when set): output(output_ud, text,
   * len) gets each line, "\n" included, not NUL-terminated. NULL: the host's stderr. */
  void (*output)(void *output_ud, const char *text, size_t len);
  void *output_ud;
  /* Bytes print may write per call (64 KiB after recur_options_init; 0 = no cap). Past it the
   * rest of the call's output is dropped, after one line that says so. Printing also charges
   * the budget, one unit per 16 bytes. */
  size_t output_limit;
} recur_options;

/* Fills opts with the defaults: no memory limit, no budget, sandbox on, threads 0,
 * module_path NULL, no time limit, print to stderr with at most 64 KiB per call. */
int recur_options_init(recur_options *opts);
/* Creates a runtime; opts may be NULL for the defaults. On failure *out is NULL and, if
 * out is not NULL, the reason is lost with the runtime: see the status. */
int recur_new(const recur_options *opts, recur_runtime **out);
/* Destroys the runtime and everything it holds (NULL is allowed). */
int recur_free(recur_runtime *rt);
/* Changes the instruction budget for the following calls (0 = none). */
int recur_set_budget(recur_runtime *rt, uint64_t instruction_budget);

/* ---- values passed in ---- */
enum {
  RECUR_NIL = 0,
  RECUR_BOOLEAN = 1,
  RECUR_NUMBER = 2,  /* double */
  RECUR_INTEGER = 3, /* int64_t */
  RECUR_STRING = 4,
  RECUR_TENSOR = 5, /* float32 array */
  RECUR_REF = 6,    /* a Lua value held by the host (recur_ref) */
  RECUR_OTHER = 7   /* only as a result type: a table, function, ... (take a recur_ref) */
};

/* A reference to a Lua value (function, table, ...) that the host keeps across calls.
 * id 0 means none. Release it with recur_ref_free. */
typedef struct recur_ref {
  int id;
} recur_ref;

/* Tensor flags. */
#define RECUR_COPY 1 /* copy the data in; without it the host's memory is lent (no copy) */

typedef struct recur_value {
  int type; /* RECUR_NIL ... RECUR_REF */
  union {
    int boolean;
    double number;
    int64_t integer;
    struct {
      const char *data; /* need not be NUL-terminated; copied */
      size_t len;
    } string;
    /* A row-major contiguous float32 array of the given shape (ndim 0 is a scalar). Without
     * RECUR_COPY the script sees the host's memory itself: it must stay valid, and the host
     * must not touch it, until the call returns; the script may write into it (an output
     * buffer). When the call returns the lent tensor is closed; views of it or results that
     * are the tensor itself keep a copy, so the runtime never touches the memory again.
     * While lent, the array counts against the memory limit (that copy must fit): lending
     * more than the limit leaves fails with RECUR_ERR_MEMORY. */
    struct {
      float *data;
      int ndim;
      int flags;
      int64_t shape[RECUR_MAX_DIM];
    } tensor;
    recur_ref ref;
  } as;
} recur_value;

/* Convenience initialisers (C99 compound literals), e.g.
 *   recur_value args[] = {RECUR_NUM(0.5), RECUR_STR("hello"), RECUR_ARRAY(x, 2, 1, 128)}; */
#define RECUR_NILV ((recur_value){.type = RECUR_NIL})
#define RECUR_BOOL(b) ((recur_value){.type = RECUR_BOOLEAN, .as.boolean = (b)})
#define RECUR_NUM(x) ((recur_value){.type = RECUR_NUMBER, .as.number = (x)})
#define RECUR_INT(i) ((recur_value){.type = RECUR_INTEGER, .as.integer = (i)})
#define RECUR_STR(s) ((recur_value){.type = RECUR_STRING, .as.string = {(s), strlen(s)}})
#define RECUR_ARRAY(ptr, nd, ...)                                                                  \
  ((recur_value){.type = RECUR_TENSOR,                                                             \
                 .as.tensor = {.data = (ptr), .ndim = (nd), .flags = 0, .shape = {__VA_ARGS__}}})
#define RECUR_REFV(r) ((recur_value){.type = RECUR_REF, .as.ref = (r)})

/* ---- running scripts and calling functions ---- */
/* Runs Lua source text (never bytecode in the sandbox); chunkname names it in messages
 * (NULL: "=string"). The chunk's return values become the results. */
int recur_run_string(recur_runtime *rt, const char *code, const char *chunkname);
/* Runs a Lua source file (read by the host; the sandbox does not restrict this path). */
int recur_run_file(recur_runtime *rt, const char *path);
/* Calls the function at a global name, with dots for fields ("model.step"), with nargs
 * arguments; *nresults (may be NULL) gets the number of results. */
int recur_call(recur_runtime *rt, const char *name, int nargs, const recur_value *args,
               int *nresults);
/* Same, for a function held by reference (faster: no name lookup). */
int recur_call_ref(recur_runtime *rt, recur_ref fn, int nargs, const recur_value *args,
                   int *nresults);
/* Loads a checkpoint as recur.load(path) does (the safetensors reader); the table it returns
 * becomes result 1 (take a recur_ref to pass it to a script). The loader is the library's own,
 * in private copies that no script can reach or replace (they are taken when the runtime is
 * made), and it may read that one file only, never write. RECUR_ERR_UNSUPPORTED if the build
 * has no loader. */
int recur_load_checkpoint(recur_runtime *rt, const char *path, int *nresults);
/* The same with flags: RECUR_LOAD_NO_OPTIMIZER calls recur.load(path, {optimizer = false}),
 * which leaves the optimizer's state unread (a host that only runs the model; with Adam that
 * state is twice the model's size). */
#define RECUR_LOAD_NO_OPTIMIZER 1
int recur_load_checkpoint_flags(recur_runtime *rt, const char *path, int flags, int *nresults);
/* Adds a pure Lua module (source text) that `require(name)` returns. */
int recur_add_module(recur_runtime *rt, const char *name, const char *source, size_t len);
/* Sets a global (dots allowed for fields of existing tables). Tensors are always copied. */
int recur_set_global(recur_runtime *rt, const char *name, const recur_value *value);

/* ---- results of the last run, call or load (1-based) ---- */
int recur_result_count(recur_runtime *rt, int *n);
int recur_result_type(recur_runtime *rt, int i, int *type);
int recur_result_number(recur_runtime *rt, int i, double *out); /* integers too */
int recur_result_integer(recur_runtime *rt, int i,
                         int64_t *out); /* numbers with integer value too */
int recur_result_boolean(recur_runtime *rt, int i, int *out);
int recur_result_string(recur_runtime *rt, int i, const char **s, size_t *len);
/* Shape of a tensor result. */
int recur_result_shape(recur_runtime *rt, int i, int *ndim, int64_t shape[RECUR_MAX_DIM]);
/* Copies a tensor result (any layout) into buf, row-major; count is buf's capacity in floats
 * (RECUR_ERR_ARGUMENT if too small). ndim and shape may be NULL. */
int recur_result_tensor(recur_runtime *rt, int i, float *buf, size_t count, int *ndim,
                        int64_t shape[RECUR_MAX_DIM]);
/* A reference to any result (e.g. a returned table of functions). */
int recur_result_ref(recur_runtime *rt, int i, recur_ref *out);

/* ---- references ---- */
/* A reference to the value at a global name (dots allowed). RECUR_ERR_NOT_FOUND if nil. */
int recur_ref_global(recur_runtime *rt, const char *name, recur_ref *out);
int recur_ref_free(recur_runtime *rt, recur_ref ref);

/* ---- errors and state ---- */
/* The message of the last failed function on rt, with a traceback when the script raised it
 * ("" if none yet). Valid until the next function on rt. */
int recur_last_error(recur_runtime *rt, const char **msg);
/* A short name for a status code ("RECUR_ERR_MEMORY"). */
int recur_status_string(int status, const char **name);

typedef struct recur_stats {
  size_t lua_bytes;    /* Lua heap in use */
  size_t tensor_bytes; /* tensor data and headers, autograd graph and other runtime structures */
  size_t memory_limit; /* 0 = none */
  uint64_t last_work;  /* budget units used by the last call (instructions + tensor work) */
} recur_stats;
int recur_get_stats(recur_runtime *rt, recur_stats *out);
/* Runs a full garbage collection (e.g. between frames). */
int recur_collect(recur_runtime *rt);

#ifdef __cplusplus
}
#endif
#endif
