/* build/recur_mpi.so: the MPI half of recur.mpi (lib/recur/mpi.lua is the other half, and the
 * only caller). A shared object of its own so that recur.so, the `recur` program and librecur
 * neither link nor initialise MPI: lib/recur/mpi.lua loads it with package.loadlib only when a
 * script requires recur.mpi under mpirun. It never sees a tensor: the Lua half checks the
 * arguments and hands over a data pointer and an element count (recur._mpi_buffer), so this
 * file needs only Lua's C API and MPI, and no state of its own (MPI keeps it). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <mpi.h>

/* Chunks of at most this many elements or bytes per MPI call: MPI counts are ints. */
#define CHUNK (1 << 30)

static int mpi_fail(lua_State *L, const char *fn, int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "code %d", rc);
  return luaL_error(L, "mpi.%s: MPI error: %s", fn, text);
}

static void check_live(lua_State *L, const char *fn) {
  int init = 0, fini = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fini);
  if (fini) luaL_error(L, "mpi.%s: called after mpi.finalize()", fn);
  if (!init) luaL_error(L, "mpi.%s: MPI is not initialised", fn);
}

/* init() -> rank, size. Open MPI loads its components with dlopen and they look up libmpi's
 * symbols globally, so libmpi is promoted to RTLD_GLOBAL first (package.loadlib opened us, and
 * with us libmpi, RTLD_LOCAL); mpi4py does the same. */
static int f_init(lua_State *L) {
  int init = 0, fini = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fini);
  if (fini) return luaL_error(L, "mpi: MPI was finalised in this process; it cannot start again");
  if (!init) {
    Dl_info info;
    if (dladdr((void *)MPI_Init, &info) && info.dli_fname)
      dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    int rc = MPI_Init(NULL, NULL);
    if (rc != MPI_SUCCESS) return mpi_fail(L, "init", rc);
    /* errors come back as codes (turned into Lua errors) instead of aborting */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  lua_pushinteger(L, rank);
  lua_pushinteger(L, size);
  return 2;
}

/* state() -> initialised, finalised */
static int f_state(lua_State *L) {
  int init = 0, fini = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fini);
  lua_pushboolean(L, init);
  lua_pushboolean(L, fini);
  return 2;
}

static int f_finalize(lua_State *L) {
  int init = 0, fini = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fini);
  if (init && !fini) {
    int rc = MPI_Finalize();
    if (rc != MPI_SUCCESS) return mpi_fail(L, "finalize", rc);
  }
  return 0;
}

/* abort(code): ends every rank of the job (the caller printed the reason). */
static int f_abort(lua_State *L) {
  int code = (int)luaL_optinteger(L, 1, 1);
  int init = 0, fini = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fini);
  fflush(stdout);
  fflush(stderr);
  if (init && !fini) MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}

static int f_barrier(lua_State *L) {
  check_live(L, "barrier");
  int rc = MPI_Barrier(MPI_COMM_WORLD);
  return rc == MPI_SUCCESS ? 0 : mpi_fail(L, "barrier", rc);
}

/* allreduce(ptr, n, op): op "sum", "mean", "max", "min", in place over n floats. */
static int f_allreduce(lua_State *L) {
  check_live(L, "allreduce");
  float *p = lua_touserdata(L, 1);
  int64_t n = luaL_checkinteger(L, 2);
  const char *op = luaL_checkstring(L, 3);
  MPI_Op mop = MPI_SUM;
  if (strcmp(op, "max") == 0)
    mop = MPI_MAX;
  else if (strcmp(op, "min") == 0)
    mop = MPI_MIN;
  for (int64_t at = 0; at < n; at += CHUNK) {
    int len = (int)(n - at < CHUNK ? n - at : CHUNK);
    int rc = MPI_Allreduce(MPI_IN_PLACE, p + at, len, MPI_FLOAT, mop, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(L, "allreduce", rc);
  }
  if (strcmp(op, "mean") == 0) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    float inv = 1.0f / (float)size;
    for (int64_t i = 0; i < n; i++) p[i] *= inv;
  }
  return 0;
}

/* broadcast(ptr, n, root) over n floats. */
static int f_broadcast(lua_State *L) {
  check_live(L, "broadcast");
  float *p = lua_touserdata(L, 1);
  int64_t n = luaL_checkinteger(L, 2);
  int root = (int)luaL_checkinteger(L, 3);
  for (int64_t at = 0; at < n; at += CHUNK) {
    int len = (int)(n - at < CHUNK ? n - at : CHUNK);
    int rc = MPI_Bcast(p + at, len, MPI_FLOAT, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(L, "broadcast", rc);
  }
  return 0;
}

/* broadcast_string(s, root) -> root's string on every rank. */
static int f_broadcast_string(lua_State *L) {
  check_live(L, "broadcast");
  size_t len = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  int root = (int)luaL_checkinteger(L, 2);
  long long n = (long long)len;
  int rc = MPI_Bcast(&n, 1, MPI_LONG_LONG, root, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return mpi_fail(L, "broadcast", rc);
  if (n < 0 || n > INT_MAX) return luaL_error(L, "mpi.broadcast: %lld bytes is too large", n);
  luaL_Buffer b;
  char *buf = luaL_buffinitsize(L, &b, (size_t)n);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == root) memcpy(buf, s, (size_t)n);
  rc = MPI_Bcast(buf, (int)n, MPI_CHAR, root, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return mpi_fail(L, "broadcast", rc);
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* gather_strings(s, root or -1) -> list of every rank's string (rank r at index r + 1) on the
 * root (every rank when root is -1: allgather), nil elsewhere. Lengths go first. */
static int f_gather_strings(lua_State *L) {
  int all = luaL_checkinteger(L, 2) < 0;
  const char *fn = all ? "allgather" : "gather";
  check_live(L, fn);
  size_t len = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  int root = all ? 0 : (int)luaL_checkinteger(L, 2);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (len > INT_MAX) return luaL_error(L, "mpi.%s: %zu bytes is too large", fn, len);
  int mine = (int)len;
  int *lens = lua_newuserdatauv(L, 2 * sizeof(int) * (size_t)size, 0);
  int *displ = lens + size;
  int rc = all ? MPI_Allgather(&mine, 1, MPI_INT, lens, 1, MPI_INT, MPI_COMM_WORLD)
               : MPI_Gather(&mine, 1, MPI_INT, lens, 1, MPI_INT, root, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return mpi_fail(L, fn, rc);
  int64_t total = 0;
  if (all || rank == root) {
    for (int r = 0; r < size; r++) {
      displ[r] = (int)total;
      total += lens[r];
    }
    if (total > INT_MAX) {
      /* every rank that gets here raises the same error; a plain gather's other ranks went
       * on, so the job ends in the Lua half's error path (abort), never a hang */
      return luaL_error(L, "mpi.%s: %lld bytes in all is too large", fn, (long long)total);
    }
  }
  char *buf = lua_newuserdatauv(L, total > 0 ? (size_t)total : 1, 0);
  rc = all ? MPI_Allgatherv(s, mine, MPI_CHAR, buf, lens, displ, MPI_CHAR, MPI_COMM_WORLD)
           : MPI_Gatherv(s, mine, MPI_CHAR, buf, lens, displ, MPI_CHAR, root, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return mpi_fail(L, fn, rc);
  if (!all && rank != root) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, size, 0);
  for (int r = 0; r < size; r++) {
    lua_pushlstring(L, buf + displ[r], (size_t)lens[r]);
    lua_rawseti(L, -2, r + 1);
  }
  return 1;
}

int luaopen_recur_mpi_core(lua_State *L);
int luaopen_recur_mpi_core(lua_State *L) {
  static const luaL_Reg fns[] = {{"init", f_init},
                                 {"state", f_state},
                                 {"finalize", f_finalize},
                                 {"abort", f_abort},
                                 {"barrier", f_barrier},
                                 {"allreduce", f_allreduce},
                                 {"broadcast", f_broadcast},
                                 {"broadcast_string", f_broadcast_string},
                                 {"gather_strings", f_gather_strings},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
