/* recur.kernel_io: what the Jupyter kernel (lib/recur/kernel.lua) needs from C and nothing
 * more: ZeroMQ sockets (libzmq), HMAC-SHA256 signatures, a constant-time compare and base64
 * (OpenSSL's libcrypto), a heartbeat thread, and a protected call that SIGINT interrupts.
 * Linked into the `recur` program only (bindings/recur_cli.c preloads it): recur.so, loaded
 * by a stock lua5.4, stays free of libzmq and libcrypto. JSON is lua-cjson's, on the Lua side.
 *
 *   kio.socket(kind, endpoint)        -> socket  (kind: "router", "pub"; bound to endpoint)
 *   sock:recv()                       -> {frame, ...} or nil (nothing waiting)
 *   sock:send({frame, ...})
 *   kio.poll({sock, ...}, timeout_ms) -> {true/false, ...} (readable)
 *   kio.heartbeat(endpoint)           echoes every ping in a thread of its own
 *   kio.hmac(key, s1, s2, ...)        -> lowercase hex HMAC-SHA256 of the concatenation
 *   kio.equal(a, b)                   -> constant-time equality (CRYPTO_memcmp)
 *   kio.b64encode(s) / kio.b64decode(s)
 *   kio.pcall(f, ...)                 -> true, results... | false, message with traceback
 *                                       (SIGINT while f runs raises "interrupted!" in it;
 *                                       SIGINT between calls is ignored)
 *   kio.close()                       closes every socket and the context
 *   kio.parent_is(pid), kio.now(), kio.embedded_source(name), kio.version() */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zmq.h>

#include "bind.h"
#include "program.h"

#define SOCKET_MT "recur.kernel_io.socket"
#define MAX_FRAMES 64

/* One ZeroMQ context per process (the kernel is the process); the heartbeat thread shares it.
 * The SIGINT handler reaches the running Lua state through `running`, as in recur_cli.c. */
static struct {
  void *ctx;
  pthread_t heartbeat;
  int heartbeat_started;
  lua_State *volatile running;
} kio;

typedef struct {
  void *s;
} socket_ud;

static void *context(lua_State *L) {
  if (kio.ctx == NULL) kio.ctx = zmq_ctx_new();
  if (kio.ctx == NULL) luaL_error(L, "kernel_io: zmq_ctx_new failed: %s", zmq_strerror(errno));
  return kio.ctx;
}

static socket_ud *check_socket(lua_State *L, int idx) {
  socket_ud *u = luaL_checkudata(L, idx, SOCKET_MT);
  if (u->s == NULL) luaL_error(L, "kernel_io: socket is closed");
  return u;
}

static int k_socket(lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  const char *endpoint = luaL_checkstring(L, 2);
  int type;
  if (strcmp(kind, "router") == 0)
    type = ZMQ_ROUTER;
  else if (strcmp(kind, "pub") == 0)
    type = ZMQ_PUB;
  else
    return luaL_argerror(L, 1, "kind must be \"router\" or \"pub\"");
  socket_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->s = NULL;
  luaL_setmetatable(L, SOCKET_MT);
  u->s = zmq_socket(context(L), type);
  if (u->s == NULL) return luaL_error(L, "kernel_io.socket: %s", zmq_strerror(errno));
  int linger = 1000; /* ms: replies in flight at shutdown still go out */
  zmq_setsockopt(u->s, ZMQ_LINGER, &linger, sizeof linger);
  if (zmq_bind(u->s, endpoint) != 0)
    return luaL_error(L, "kernel_io.socket: cannot bind %s: %s", endpoint, zmq_strerror(errno));
  return 1;
}

/* Receives one multipart message without blocking; nil when none is waiting. */
static int s_recv(lua_State *L) {
  socket_ud *u = check_socket(L, 1);
  lua_newtable(L);
  int n = 0, more = 1;
  while (more) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc;
    do rc = zmq_msg_recv(&m, u->s, n == 0 ? ZMQ_DONTWAIT : 0);
    while (rc < 0 && errno == EINTR && n > 0);
    if (rc < 0) {
      zmq_msg_close(&m);
      if (n == 0 && (errno == EAGAIN || errno == EINTR)) return 0;
      return luaL_error(L, "kernel_io: recv failed: %s", zmq_strerror(errno));
    }
    more = zmq_msg_more(&m);
    if (n < MAX_FRAMES) { /* a flood of frames is cut, not stored */
      lua_pushlstring(L, zmq_msg_data(&m), zmq_msg_size(&m));
      lua_rawseti(L, -2, ++n);
    }
    zmq_msg_close(&m);
  }
  return 1;
}

static int s_send(lua_State *L) {
  socket_ud *u = check_socket(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 2, i);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (s == NULL) return luaL_error(L, "kernel_io.send: frame %d is not a string", (int)i);
    int rc;
    do rc = zmq_send(u->s, s, len, i < n ? ZMQ_SNDMORE : 0);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) return luaL_error(L, "kernel_io.send: %s", zmq_strerror(errno));
    lua_pop(L, 1);
  }
  return 0;
}

static int s_close(lua_State *L) {
  socket_ud *u = luaL_checkudata(L, 1, SOCKET_MT);
  if (u->s) zmq_close(u->s);
  u->s = NULL;
  return 0;
}

static int k_poll(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  long timeout = (long)luaL_checkinteger(L, 2);
  int n = (int)luaL_len(L, 1);
  if (n < 1 || n > 8) return luaL_argerror(L, 1, "1 to 8 sockets");
  zmq_pollitem_t items[8];
  for (int i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    items[i].socket = check_socket(L, -1)->s;
    items[i].fd = 0;
    items[i].events = ZMQ_POLLIN;
    items[i].revents = 0;
    lua_pop(L, 1);
  }
  int rc = zmq_poll(items, n, timeout);
  if (rc < 0 && errno != EINTR) return luaL_error(L, "kernel_io.poll: %s", zmq_strerror(errno));
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushboolean(L, rc > 0 && (items[i].revents & ZMQ_POLLIN));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* The heartbeat: a REP socket echoing pings, in its own thread so that a long cell does not
 * look like a dead kernel. It ends when the context is terminated (kio.close). */
static void *heartbeat_loop(void *arg) {
  void *s = arg;
  for (;;) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s, 0) < 0) {
      zmq_msg_close(&m);
      if (errno == EINTR) continue;
      break; /* ETERM */
    }
    int rc = zmq_msg_send(&m, s, 0);
    if (rc < 0) zmq_msg_close(&m);
    if (rc < 0 && errno == ETERM) break;
  }
  zmq_close(s);
  return NULL;
}

static int k_heartbeat(lua_State *L) {
  const char *endpoint = luaL_checkstring(L, 1);
  if (kio.heartbeat_started) return luaL_error(L, "kernel_io.heartbeat: already running");
  void *s = zmq_socket(context(L), ZMQ_REP);
  if (s == NULL) return luaL_error(L, "kernel_io.heartbeat: %s", zmq_strerror(errno));
  int linger = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  if (zmq_bind(s, endpoint) != 0) {
    int e = errno;
    zmq_close(s);
    return luaL_error(L, "kernel_io.heartbeat: cannot bind %s: %s", endpoint, zmq_strerror(e));
  }
  /* the thread must not take SIGINT: the handler is meant for the Lua thread */
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  int rc = pthread_create(&kio.heartbeat, NULL, heartbeat_loop, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    zmq_close(s);
    return luaL_error(L, "kernel_io.heartbeat: cannot start the thread");
  }
  kio.heartbeat_started = 1;
  return 0;
}

static int k_close(lua_State *L) {
  (void)L;
  if (kio.ctx) zmq_ctx_term(kio.ctx); /* sockets still open in Lua make this wait: close first */
  if (kio.heartbeat_started) pthread_join(kio.heartbeat, NULL);
  kio.ctx = NULL;
  kio.heartbeat_started = 0;
  return 0;
}

static int k_hmac(lua_State *L) {
  size_t klen;
  const char *key = luaL_checklstring(L, 1, &klen);
  int n = lua_gettop(L);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  /* one-shot over the concatenation: the parts are joined first (they are small) */
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 2; i <= n; i++) {
    size_t len;
    const char *s = luaL_checklstring(L, i, &len);
    luaL_addlstring(&b, s, len);
  }
  luaL_pushresult(&b);
  size_t dlen;
  const unsigned char *data = (const unsigned char *)lua_tolstring(L, -1, &dlen);
  if (HMAC(EVP_sha256(), key, (int)klen, data, dlen, md, &mdlen) == NULL)
    return luaL_error(L, "kernel_io.hmac: HMAC-SHA256 failed");
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  static const char digits[] = "0123456789abcdef";
  for (unsigned int i = 0; i < mdlen; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  lua_pushlstring(L, hex, 2 * (size_t)mdlen);
  return 1;
}

/* Equal lengths are compared in constant time; the length of a digest is no secret. */
static int k_equal(lua_State *L) {
  size_t la, lb;
  const char *a = luaL_checklstring(L, 1, &la);
  const char *b = luaL_checklstring(L, 2, &lb);
  lua_pushboolean(L, la == lb && CRYPTO_memcmp(a, b, la) == 0);
  return 1;
}

static int k_b64encode(lua_State *L) {
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  if (len > (size_t)INT32_MAX / 2) return luaL_argerror(L, 1, "too long");
  size_t out = 4 * ((len + 2) / 3) + 1;
  luaL_Buffer b;
  unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, out);
  int n = EVP_EncodeBlock(p, s, (int)len);
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

static int k_b64decode(lua_State *L) {
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  if (len % 4 != 0 || len > (size_t)INT32_MAX / 2)
    return luaL_argerror(L, 1, "not base64 (length must be a multiple of 4)");
  luaL_Buffer b;
  unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, len / 4 * 3 + 1);
  int n = EVP_DecodeBlock(p, s, (int)len);
  if (n < 0) return luaL_argerror(L, 1, "not base64");
  /* EVP_DecodeBlock counts the padding as zero bytes */
  if (len >= 1 && s[len - 1] == '=') n--;
  if (len >= 2 && s[len - 2] == '=') n--;
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* ---- interruptible calls ---- */

static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_where(L, 1);
  lua_pushliteral(L, "interrupted!");
  lua_concat(L, 2);
  lua_error(L);
}

static void on_sigint(int sig) {
  (void)sig;
  lua_State *L = kio.running;
  if (L) lua_sethook(L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static int k_pcall(lua_State *L) {
  luaL_checkany(L, 1);
  int n = lua_gettop(L);
  lua_pushcfunction(L, rb_msghandler);
  lua_insert(L, 1);
  kio.running = L;
  int status = lua_pcall(L, n - 1, LUA_MULTRET, 1);
  kio.running = NULL;
  lua_sethook(L, NULL, 0, 0); /* an interrupt that came too late must not hit the kernel */
  lua_pushboolean(L, status == LUA_OK);
  lua_replace(L, 1);
  return lua_gettop(L);
}

/* SIGINT is caught for the kernel's whole life: between cells it does nothing (Jupyter's
 * interrupt button while idle must not kill the kernel). No SA_RESTART: poll returns. */
static int k_catch_sigint(lua_State *L) {
  (void)L;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  return 0;
}

/* Whether the process that started the kernel is still its parent (Jupyter passes its pid as
 * JPY_PARENT_PID): a kernel whose frontend died exits instead of lingering. */
static int k_parent_is(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  lua_pushboolean(L, (lua_Integer)getppid() == pid);
  return 1;
}

/* Seconds on the monotonic clock: paces the flushing of stream output. */
static int k_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + 1e-9 * (lua_Number)ts.tv_nsec);
  return 1;
}

/* The source text of an embedded module ("recur.plot"), or nil: inspect_request reads the
 * comment above a function of the Lua half from it. */
static int k_embedded_source(lua_State *L) {
  size_t len;
  const unsigned char *src = rb_embedded_source(luaL_checkstring(L, 1), &len);
  if (!src) return 0;
  lua_pushlstring(L, (const char *)src, len);
  return 1;
}

static int k_version(lua_State *L) {
  int major, minor, patch;
  zmq_version(&major, &minor, &patch);
  lua_pushfstring(L, "ZeroMQ %d.%d.%d, %s", major, minor, patch, OpenSSL_version(OPENSSL_VERSION));
  return 1;
}

int luaopen_recur_kernel_io(lua_State *L) {
  static const luaL_Reg socket_methods[] = {
      {"recv", s_recv}, {"send", s_send}, {"close", s_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"socket", k_socket},
                                   {"poll", k_poll},
                                   {"heartbeat", k_heartbeat},
                                   {"close", k_close},
                                   {"hmac", k_hmac},
                                   {"equal", k_equal},
                                   {"b64encode", k_b64encode},
                                   {"b64decode", k_b64decode},
                                   {"pcall", k_pcall},
                                   {"catch_sigint", k_catch_sigint},
                                   {"version", k_version},
                                   {"now", k_now},
                                   {"parent_is", k_parent_is},
                                   {"embedded_source", k_embedded_source},
                                   {NULL, NULL}};
  if (luaL_newmetatable(L, SOCKET_MT)) {
    luaL_newlib(L, socket_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, s_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
