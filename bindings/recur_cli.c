/* The `recur` program: Lua 5.4 with recur preloaded (global `recur`, and `require "recur"`).
 * Command line, script mode and REPL follow the stock `lua` program where they overlap:
 *   recur [options] [script [args]]
 * The REPL uses GNU readline when stdin is a terminal (history in ~/.recur_history), and a
 * plain line reader otherwise; with readline, Tab completes global names, fields after `.`,
 * methods after `:` and keywords (candidates from lib/recur/repl.lua). Ctrl-C interrupts a
 * running chunk with an error; at the prompt it discards the pending input. */
#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "program.h"

int luaopen_recur(lua_State *L);
int luaopen_recur_kernel_io(lua_State *L);

#define PROGNAME "recur"
#define PROMPT1 "recur> "
#define PROMPT2 "...> "
#define HISTORY_FILE ".recur_history"
#define HISTORY_MAX 1000
#define MAX_INPUT_LINE 4096
#define EOF_MARK "<eof>"

/* The program's only mutable static: a signal handler and readline's callbacks receive no
 * argument, so SIGINT reaches the Lua state being run (or the line reader) through this, as
 * in lua.c, and Tab completion reaches the REPL's state. */
static struct {
  lua_State *volatile running;       /* state inside docall, else NULL */
  volatile sig_atomic_t interrupted; /* Ctrl-C while no chunk was running */
  lua_State *completing;             /* the REPL's state while readline reads a line */
} cli_state;

/* ---- messages ---- */

static void print_usage(FILE *f) {
  fputs("usage: " PROGNAME " [options] [script [args]]\n"
        "Available options are:\n"
        "  -e stat    execute string 'stat'\n"
        "  -i         enter interactive mode after executing 'script'\n"
        "  -l mod     require library 'mod' into global 'mod'\n"
        "  -l g=mod   require library 'mod' into global 'g'\n"
        "  -v         show version information\n"
        "  -E         ignore environment variables\n"
        "  -W         turn warnings on\n"
        "  --help     show this help\n"
        "  --version  show version information\n"
        "  --         stop handling options\n"
        "  -          stop handling options and execute stdin\n"
        "  --kernel CONNECTION_FILE   run as a Jupyter kernel (docs/notebooks.md)\n"
        "  --install-kernel [--user|--prefix P]   write the Jupyter kernelspec\n",
        f);
  fflush(f);
}

/* Writes "recur: msg" (or just msg in the REPL) to stderr. */
static void message(int with_progname, const char *msg) {
  if (with_progname) fputs(PROGNAME ": ", stderr);
  fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
  fflush(stderr);
}

/* Reports a failed status (error message on the top of the stack) and pops it. */
static int report(lua_State *L, int status, int with_progname) {
  if (status != LUA_OK) {
    message(with_progname, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return status;
}

/* ---- running chunks ---- */

/* Message handler: appends a traceback to the error message (lua.c's). */
int rb_msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Hook set by the SIGINT handler: raises an error in the running chunk. */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  /* the position of the innermost Lua function (the hook may fire on the call or return
   * of a C function such as os.clock, which has none) */
  lua_Debug d;
  for (int level = 0; lua_getstack(L, level, &d); level++) {
    if (lua_getinfo(L, "Sl", &d) && d.currentline > 0) {
      lua_pushfstring(L, "%s:%d: interrupted!", d.short_src, d.currentline);
      lua_error(L);
    }
  }
  luaL_error(L, "interrupted!");
}

static void on_sigint(int sig) {
  (void)sig;
  lua_State *L = cli_state.running;
  if (L)
    lua_sethook(L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  else
    cli_state.interrupted = 1;
}

/* Installs on_sigint without SA_RESTART, so that a blocked read returns. */
static void catch_sigint(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, NULL);
}

static void default_sigint(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
}

/* Calls the function below narg arguments with a traceback handler; Ctrl-C interrupts it.
 * keep_handler: leave on_sigint installed afterwards (the REPL), else restore the default. */
static int docall(lua_State *L, int narg, int nres, int keep_handler) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, rb_msghandler);
  lua_insert(L, base);
  cli_state.running = L;
  catch_sigint();
  int status = lua_pcall(L, narg, nres, base);
  cli_state.running = NULL;
  lua_sethook(L, NULL, 0, 0); /* a Ctrl-C that came too late must not hit the next chunk */
  if (!keep_handler) default_sigint();
  lua_remove(L, base);
  return status;
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = docall(L, 0, 0, 0);
  return report(L, status, 1);
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l [g=]mod: g = require(mod); g defaults to mod. */
static int dolibrary(lua_State *L, const char *spec) {
  const char *eq = strchr(spec, '=');
  const char *modname = eq ? eq + 1 : spec;
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  int status = docall(L, 1, 1, 0);
  if (status == LUA_OK) {
    if (eq)
      lua_pushlstring(L, spec, (size_t)(eq - spec));
    else
      lua_pushstring(L, spec);
    lua_insert(L, -2);
    lua_setglobal(L, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  return report(L, status, 1);
}

/* ---- command line ---- */

enum { HAS_ERROR = 1, HAS_I = 2, HAS_V = 4, HAS_E = 8, HAS_BIG_E = 16, HAS_HELP = 32 };

/* Scans the options; *script gets the index of the script argument (argc if none).
 * On error *bad is the offending argument. */
static int collect_args(int argc, char **argv, int *script, const char **bad) {
  int args = 0;
  *bad = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    *script = i;
    if (a[0] != '-') return args; /* the script */
    if (strcmp(a, "--help") == 0) {
      args |= HAS_HELP;
      continue;
    }
    if (strcmp(a, "--version") == 0) {
      args |= HAS_V;
      continue;
    }
    switch (a[1]) {
    case '-':
      if (a[2] != '\0') goto invalid;
      *script = i + 1;
      return args;
    case '\0': /* "-": the script is stdin */
      return args;
    case 'E':
    case 'W':
    case 'i':
    case 'v':
      if (a[2] != '\0') goto invalid;
      if (a[1] == 'E') args |= HAS_BIG_E;
      if (a[1] == 'i') args |= HAS_I | HAS_V;
      if (a[1] == 'v') args |= HAS_V;
      break;
    case 'e':
    case 'l':
      if (a[1] == 'e') args |= HAS_E;
      if (a[2] == '\0') {
        i++;
        if (i >= argc || argv[i][0] == '-') {
          *bad = a;
          return HAS_ERROR;
        }
      }
      break;
    default:
      goto invalid;
    }
  }
  *script = argc;
  return args;
invalid:
  *bad = argv[*script];
  return HAS_ERROR;
}

/* Global `arg`: arg[0] is the script (or the program when there is none), options get
 * negative indices and the script's arguments positive ones. */
static void create_arg_table(lua_State *L, int argc, char **argv, int script) {
  if (script >= argc) script = 0;
  lua_createtable(L, argc - script - 1 > 0 ? argc - script - 1 : 0, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* Runs -e, -l and -W in the order given (those before the script). */
static int run_args(lua_State *L, char **argv, int script) {
  for (int i = 1; i < script; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] == '-') continue; /* --help / --version */
    switch (a[1]) {
    case 'e':
    case 'l': {
      const char *extra = a + 2;
      if (*extra == '\0') extra = argv[++i];
      int status = a[1] == 'e' ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
      if (status != LUA_OK) return 0;
      break;
    }
    case 'W':
      lua_warning(L, "@on", 0);
      break;
    default:
      break;
    }
  }
  return 1;
}

static int handle_luainit(lua_State *L) {
  const char *name = "=LUA_INIT_5_4";
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dochunk(L, luaL_loadfile(L, init + 1));
  return dostring(L, init, name);
}

/* Runs the script argv[script] ("-" is stdin unless it came after "--") with its args. */
static int handle_script(lua_State *L, char **argv, int script) {
  const char *fname = argv[script];
  if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0) fname = NULL;
  int status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
    int n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    status = docall(L, n, LUA_MULTRET, 0);
  }
  return report(L, status, 1);
}

/* Pushes "recur 0.1.0  Lua 5.4.4  OpenBLAS 0.3.21 (Haswell, 2 threads)" from recur.config(). */
static int version_line(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "recur") != LUA_TTABLE) return luaL_error(L, "recur is not loaded");
  lua_getfield(L, -1, "config");
  lua_call(L, 0, 1);
  int cfg = lua_gettop(L);
  lua_getfield(L, cfg, "blas");
  int blas = lua_gettop(L);
  lua_getfield(L, cfg, "version");
  lua_getfield(L, cfg, "lua");
  lua_getfield(L, blas, "vendor");
  lua_getfield(L, blas, "version");
  lua_getfield(L, blas, "core");
  lua_Integer threads = (lua_getfield(L, blas, "threads"), lua_tointeger(L, -1));
  lua_pushfstring(L, "%s  %s  %s %s (%s, %I thread%s)", lua_tostring(L, blas + 1),
                  lua_tostring(L, blas + 2), lua_tostring(L, blas + 3), lua_tostring(L, blas + 4),
                  lua_tostring(L, blas + 5), threads, threads == 1 ? "" : "s");
  return 1;
}

static void print_version(lua_State *L) {
  lua_pushcfunction(L, version_line);
  if (lua_pcall(L, 0, 1, 0) == LUA_OK) {
    printf("%s\n", lua_tostring(L, -1));
    fflush(stdout);
    lua_pop(L, 1);
  } else {
    report(L, LUA_ERRRUN, 1);
  }
}

/* ---- REPL ---- */

typedef struct {
  int use_readline;
  int eof;            /* end of input came while a chunk was incomplete */
  char history[4096]; /* history file, "" if none */
} repl;

enum { LINE_EOF, LINE_OK, LINE_INTERRUPTED };

/* readline's character source: a plain read that gives up on Ctrl-C (the line read so far
 * is accepted, then discarded by the caller). */
static int repl_getc(FILE *f) {
  for (;;) {
    if (cli_state.interrupted) return '\n';
    unsigned char c;
    ssize_t n = read(fileno(f), &c, 1);
    if (n == 1) return c;
    if (n == 0) return EOF;
    if (errno != EINTR) return EOF;
  }
}

static const char *get_prompt(lua_State *L, int first) {
  const char *p = first ? PROMPT1 : PROMPT2;
  if (lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2") == LUA_TSTRING)
    p = lua_tostring(L, -1); /* stays valid: the global holds it */
  lua_pop(L, 1);
  return p;
}

/* Reads one line (without its newline) and pushes it. */
static int push_line(lua_State *L, repl *r, int first) {
  const char *prompt = get_prompt(L, first);
  cli_state.interrupted = 0;
  if (r->use_readline) {
    char *line = readline(prompt);
    if (cli_state.interrupted) {
      free(line);
      return LINE_INTERRUPTED;
    }
    if (line == NULL) return LINE_EOF;
    lua_pushstring(L, line);
    free(line);
  } else {
    char buf[MAX_INPUT_LINE];
    fputs(prompt, stdout);
    fflush(stdout);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int got = 0;
    for (;;) {
      if (fgets(buf, sizeof buf, stdin) == NULL) {
        if (cli_state.interrupted) {
          clearerr(stdin);
          fputc('\n', stdout);
          luaL_pushresult(&b);
          lua_pop(L, 1);
          return LINE_INTERRUPTED;
        }
        break;
      }
      got = 1;
      size_t len = strlen(buf);
      if (len > 0 && buf[len - 1] == '\n') {
        luaL_addlstring(&b, buf, len - 1);
        break;
      }
      luaL_addlstring(&b, buf, len);
    }
    luaL_pushresult(&b);
    if (!got) {
      lua_pop(L, 1);
      return LINE_EOF;
    }
  }
  if (first && lua_tostring(L, -1)[0] == '=') { /* "=expr", as in Lua 5.2 */
    lua_pushfstring(L, "return %s", lua_tostring(L, -1) + 1);
    lua_remove(L, -2);
  }
  return LINE_OK;
}

static void save_line(repl *r, const char *line) {
  if (r->use_readline && line[0] != '\0') add_history(line);
}

/* A syntax error whose message ends in <eof>: more lines may complete the chunk. */
static int incomplete(lua_State *L, int status) {
  if (status != LUA_ERRSYNTAX) return 0;
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  size_t mark = sizeof EOF_MARK - 1;
  if (msg && len >= mark && strcmp(msg + len - mark, EOF_MARK) == 0) {
    lua_pop(L, 1);
    return 1;
  }
  return 0;
}

/* Tries to compile "return <line>" (the line at the top); on success replaces the line. */
static int add_return(lua_State *L, repl *r) {
  const char *line = lua_tostring(L, -1);
  const char *ret = lua_pushfstring(L, "return %s;", line);
  int status = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");
  if (status == LUA_OK) {
    lua_remove(L, -2); /* "return ..." */
    save_line(r, line);
    lua_remove(L, -2); /* the line */
  } else {
    lua_pop(L, 2); /* error message and "return ..." */
  }
  return status;
}

/* Compiles the line at the top as a statement, reading continuation lines while the chunk
 * is incomplete. Leaves the function or the error message in place of the line. */
static int multi_line(lua_State *L, repl *r) {
  for (;;) {
    size_t len;
    const char *chunk = lua_tolstring(L, -1, &len);
    int status = luaL_loadbuffer(L, chunk, len, "=stdin");
    if (!incomplete(L, status)) {
      save_line(r, chunk);
      lua_remove(L, -2);
      return status;
    }
    int got = push_line(L, r, 0);
    if (got != LINE_OK) {
      save_line(r, chunk);
      if (got == LINE_INTERRUPTED) {
        lua_pop(L, 1);
        return -1;
      }
      /* end of input: report the incomplete chunk's error, then stop (on a terminal
       * the user pressed Ctrl-D, which means leave) */
      r->eof = 1;
      status = luaL_loadbuffer(L, chunk, len, "=stdin");
      lua_remove(L, -2);
      return status;
    }
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

/* Reads and compiles one chunk. Returns LUA_OK (function on the stack), an error status
 * (message on the stack), -1 (interrupted: nothing) or -2 (end of input). */
static int load_line(lua_State *L, repl *r) {
  lua_settop(L, 0);
  int got = push_line(L, r, 1);
  if (got == LINE_EOF) return -2;
  if (got == LINE_INTERRUPTED) return -1;
  int status = add_return(L, r);
  if (status != LUA_OK) status = multi_line(L, r);
  return status;
}

/* Prints every value on the stack with tostring, tab-separated (runs protected). */
static int print_values(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checkstack(L, 2, "too many results to print");
  for (int i = 1; i <= n; i++) {
    size_t len;
    const char *s = luaL_tolstring(L, i, &len);
    if (i > 1) fputc('\t', stdout);
    fwrite(s, 1, len, stdout);
    lua_pop(L, 1);
  }
  fputc('\n', stdout);
  fflush(stdout);
  return 0;
}

static void repl_print(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0) return;
  lua_pushcfunction(L, print_values);
  lua_insert(L, 1);
  if (lua_pcall(L, n, 0, 0) != LUA_OK) {
    const char *msg = lua_pushfstring(L, "error printing the result (%s)", lua_tostring(L, -1));
    message(0, msg);
    lua_pop(L, 2);
  }
}

static void history_open(repl *r) {
  r->history[0] = '\0';
  if (!r->use_readline) return;
  rl_readline_name = PROGNAME;
  rl_catch_signals = 0; /* Ctrl-C goes to on_sigint; repl_getc then ends the line */
  rl_getc_function = repl_getc;
  using_history();
  stifle_history(HISTORY_MAX);
  const char *home = getenv("HOME");
  if (home && home[0]) {
    int n = snprintf(r->history, sizeof r->history, "%s/%s", home, HISTORY_FILE);
    if (n < 0 || (size_t)n >= sizeof r->history)
      r->history[0] = '\0';
    else
      read_history(r->history); /* a missing file is fine */
  }
}

/* ---- Tab completion (readline only) ---- */

#define COMPLETE_KEY "recur.repl.complete" /* registry: require("recur.repl").complete */

/* Loads require("recur.repl").complete into the registry (runs protected). */
static int complete_load(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "recur.repl");
  lua_call(L, 1, 1);
  if (!lua_istable(L, -1) || lua_getfield(L, -1, "complete") != LUA_TFUNCTION)
    return luaL_error(L, "recur.repl.complete is not a function");
  lua_setfield(L, LUA_REGISTRYINDEX, COMPLETE_KEY);
  return 0;
}

/* complete(text) -> matches, kinds (runs protected; text is light userdata: pushing it may
 * raise). */
static int complete_call(lua_State *L) {
  const char *text = lua_touserdata(L, 1);
  if (lua_getfield(L, LUA_REGISTRYINDEX, COMPLETE_KEY) != LUA_TFUNCTION) return 0;
  lua_pushstring(L, text);
  lua_call(L, 1, 2);
  return 2;
}

/* The i-th string of the list at idx, or NULL. */
static const char *list_string(lua_State *L, int idx, lua_Integer i) {
  const char *s = lua_rawgeti(L, idx, i) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1); /* the string stays alive in the list */
  return s;
}

/* Frees a readline match array of n + 2 entries (NULL where not filled). */
static char **free_matches(char **m, lua_Integer n) {
  for (lua_Integer i = 0; i < n + 2; i++) free(m[i]);
  free(m);
  return NULL;
}

/* readline's completion function: the candidates of recur.repl.complete for the word before
 * the cursor (words break at operators and brackets, not at `.` and `:`). Inside a string
 * it falls back to readline's file names. */
static char **repl_completion(const char *text, int start, int end) {
  (void)start;
  (void)end;
  rl_completion_append_character = '\0';
  if (rl_completion_quote_character) return NULL; /* file names */
  rl_attempted_completion_over = 1;
  lua_State *L = cli_state.completing;
  if (L == NULL || !lua_checkstack(L, 4)) return NULL;
  int top = lua_gettop(L);
  lua_pushcfunction(L, complete_call);
  lua_pushlightuserdata(L, (void *)text);
  char **m = NULL;
  if (lua_pcall(L, 1, 2, 0) != LUA_OK || !lua_istable(L, top + 1) || !lua_istable(L, top + 2))
    goto done;
  lua_Integer n = (lua_Integer)lua_rawlen(L, top + 1);
  if (n <= 0) goto done;
  m = calloc((size_t)n + 2, sizeof *m);
  if (m == NULL) goto done;
  /* one match: {match, NULL}; several: {common prefix, matches..., NULL} */
  size_t common = 0;
  const char *first = NULL;
  for (lua_Integer i = 1; i <= n; i++) {
    const char *s = list_string(L, top + 1, i);
    if (s == NULL || (m[n == 1 ? 0 : i] = strdup(s)) == NULL) {
      m = free_matches(m, n);
      goto done;
    }
    if (first == NULL) {
      first = s;
      common = strlen(s);
    }
    size_t j = 0;
    while (j < common && s[j] == first[j]) j++;
    common = j;
  }
  if (n > 1) {
    m[0] = strndup(first, common);
    if (m[0] == NULL) m = free_matches(m, n);
  } else { /* one match: "(" after a function, a space after a keyword */
    const char *kind = list_string(L, top + 2, 1);
    if (kind && strcmp(kind, "function") == 0) rl_completion_append_character = '(';
    if (kind && strcmp(kind, "keyword") == 0) rl_completion_append_character = ' ';
  }
done:
  lua_settop(L, top);
  return m;
}

/* The Tab key: indents when only blanks precede the cursor, else completes. */
static int repl_tab(int count, int key) {
  for (int i = 0; i < rl_point; i++)
    if (!isspace((unsigned char)rl_line_buffer[i])) return rl_complete(count, key);
  return rl_insert(count, key);
}

/* Sets up Tab completion for the REPL's state (when readline is used). */
static void completion_open(lua_State *L, repl *r) {
  cli_state.completing = NULL;
  if (!r->use_readline) return;
  lua_pushcfunction(L, complete_load);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) { /* no completion, but the REPL works */
    lua_pop(L, 1);
    return;
  }
  cli_state.completing = L;
  rl_attempted_completion_function = repl_completion;
  rl_completer_word_break_characters = " \t\n\"\\'`@$><=;|&{(}[]),+-*/%^~#";
  rl_completer_quote_characters = "\"'";
  rl_bind_key('\t', repl_tab);
}

static void history_close(repl *r) {
  if (!r->use_readline) return;
  if (r->history[0]) write_history(r->history); /* failures are ignored */
  clear_history();
}

static void do_repl(lua_State *L) {
  repl r;
  r.use_readline = isatty(STDIN_FILENO);
  r.eof = 0;
  history_open(&r);
  completion_open(L, &r);
  catch_sigint();
  int status;
  while ((status = load_line(L, &r)) != -2) {
    if (status == -1) continue; /* Ctrl-C at the prompt */
    if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET, 1);
    if (status == LUA_OK)
      repl_print(L);
    else
      report(L, status, 0);
    if (r.eof) break;
  }
  lua_settop(L, 0);
  if (!r.use_readline) fputc('\n', stdout); /* readline ends the line itself */
  fflush(stdout);
  default_sigint();
  cli_state.completing = NULL;
  history_close(&r);
}

/* ---- Jupyter ---- */

/* `recur --kernel FILE` and `recur --install-kernel [...]`: lib/recur/kernel.lua does the
 * work, with the C half (bindings/kernel_io.c) preloaded as recur.kernel_io. Returns 1 on
 * success. */
static int run_kernel(lua_State *L, int argc, char **argv) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_recur_kernel_io);
  lua_setfield(L, -2, "recur.kernel_io");
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "recur.kernel");
  if (report(L, docall(L, 1, 1, 0), 1) != LUA_OK) return 0;
  lua_getfield(L, -1, "main");
  lua_createtable(L, argc - 1, 0);
  for (int i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_pushstring(L, argv[0]);
  if (report(L, lua_pcall(L, 2, 1, 0), 1) != LUA_OK) return 0;
  return lua_toboolean(L, -1);
}

/* ---- main ---- */

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  int script = argc;
  const char *bad = NULL;
  luaL_checkversion(L);
  if (argc >= 2 && (strcmp(argv[1], "--kernel") == 0 || strcmp(argv[1], "--install-kernel") == 0)) {
    luaL_openlibs(L);
    luaL_requiref(L, "recur", luaopen_recur, 1);
    lua_pop(L, 1);
    lua_gc(L, LUA_GCRESTART);
    lua_gc(L, LUA_GCGEN, 0, 0);
    lua_pushboolean(L, run_kernel(L, argc, argv));
    return 1;
  }
  int args = collect_args(argc, argv, &script, &bad);
  if (args == HAS_ERROR) {
    if (bad && (bad[1] == 'e' || bad[1] == 'l') && bad[2] == '\0')
      fprintf(stderr, PROGNAME ": '%s' needs argument\n", bad);
    else
      fprintf(stderr, PROGNAME ": unrecognized option '%s'\n", bad ? bad : "?");
    print_usage(stderr);
    return 0;
  }
  if (args & HAS_HELP) {
    print_usage(stdout);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (args & HAS_BIG_E) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  luaL_requiref(L, "recur", luaopen_recur, 1);
  lua_pop(L, 1);
  create_arg_table(L, argc, argv, script);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (args & HAS_V) print_version(L);
  if (!(args & HAS_BIG_E) && handle_luainit(L) != LUA_OK) return 0;
  if (!run_args(L, argv, script)) return 0;
  if (script < argc && handle_script(L, argv, script) != LUA_OK) return 0;
  if (args & HAS_I) {
    do_repl(L);
  } else if (script >= argc && !(args & (HAS_E | HAS_V))) {
    if (isatty(STDIN_FILENO)) {
      print_version(L);
      do_repl(L);
    } else if (dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK) {
      return 0;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* After a failure was reported: if the script loaded recur.mpi under mpirun, end every rank of
 * the job now (MPI_Abort) rather than leave the others waiting in a collective for this one. */
static void end_mpi_job(lua_State *L) {
  if (lua_getglobal(L, "package") == LUA_TTABLE && lua_getfield(L, -1, "loaded") == LUA_TTABLE &&
      lua_getfield(L, -1, "recur.mpi") == LUA_TTABLE &&
      lua_getfield(L, -1, "_on_fatal_error") == LUA_TFUNCTION) {
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) report(L, LUA_ERRRUN, 1);
  }
  lua_settop(L, 0);
}

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    message(1, "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_gc(L, LUA_GCSTOP);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int ok = lua_toboolean(L, -1);
  report(L, status, 1);
  if (!(ok && status == LUA_OK)) end_mpi_job(L);
  lua_close(L);
  return (ok && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
