/* Lua pattern matching for the embedding sandbox: string.find, match, gmatch and gsub with the
 * semantics of Lua 5.4's (manual section 6.4.1), written so that the matcher charges its
 * steps to the runtime's work budget. The standard ones run as one C call that no count hook
 * interrupts, and a pattern such as ("a-"):rep(30) .. "b" on a long subject backtracks for
 * hours; here it ends with "instruction budget exceeded". One budget unit per 16 steps. */
#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include "bind.h"

#define MAXCAPTURES 32
#define MAXDEPTH 200 /* nested match calls ("pattern too complex") */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define ESC '%'
#define SPECIALS "^$*+?.([%-"
#define TICK_STEPS 1024

typedef struct {
  const char *src_init, *src_end, *p_end;
  lua_State *L;
  rc_ctx *c;
  int depth;
  int level;
  unsigned steps;
  struct {
    const char *init;
    ptrdiff_t len;
  } capture[MAXCAPTURES];
} mstate;

#define U(ch) ((unsigned char)(ch))

static void charge(mstate *ms, unsigned steps) {
  if (rc_charge(ms->c, "string pattern", steps / 16 + 1)) luaL_error(ms->L, "%s", ms->c->err);
}

static inline void tick(mstate *ms) {
  if (++ms->steps >= TICK_STEPS) {
    ms->steps = 0;
    charge(ms, TICK_STEPS);
  }
}

/* n steps at once: a bracket class is scanned byte by byte at every subject position it is
 * tried at, and ("[" .. ("a-z"):rep(20000) .. "]") is 60,000 bytes long. */
static void tick_n(mstate *ms, ptrdiff_t n) {
  if (n >= TICK_STEPS) {
    charge(ms, n > (ptrdiff_t)1 << 30 ? 1u << 30 : (unsigned)n);
    return;
  }
  ms->steps += (unsigned)n;
  if (ms->steps >= TICK_STEPS) {
    ms->steps = 0;
    charge(ms, TICK_STEPS);
  }
}

static const char *match(mstate *ms, const char *s, const char *p);

static const char *class_end(mstate *ms, const char *p) {
  switch (*p++) {
  case ESC:
    if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
    return p + 1;
  case '[': {
    const char *start = p;
    if (*p == '^') p++;
    do { /* the first character after '[' or '[^' is a member even if it is ']' */
      if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
      if (*(p++) == ESC && p < ms->p_end) p++;
    } while (*p != ']');
    tick_n(ms, p - start);
    return p + 1;
  }
  default:
    return p;
  }
}

static int match_class(int ch, int cl) {
  int r;
  switch (tolower(cl)) {
  case 'a':
    r = isalpha(ch);
    break;
  case 'c':
    r = iscntrl(ch);
    break;
  case 'd':
    r = isdigit(ch);
    break;
  case 'g':
    r = isgraph(ch);
    break;
  case 'l':
    r = islower(ch);
    break;
  case 'p':
    r = ispunct(ch);
    break;
  case 's':
    r = isspace(ch);
    break;
  case 'u':
    r = isupper(ch);
    break;
  case 'w':
    r = isalnum(ch);
    break;
  case 'x':
    r = isxdigit(ch);
    break;
  case 'z': /* deprecated in 5.4, still accepted by Lua's own matcher */
    r = ch == 0;
    break;
  default:
    return cl == ch;
  }
  if (isupper(cl)) r = !r;
  return r != 0;
}

/* p at '[', ec at the closing ']' */
static int match_bracket(int ch, const char *p, const char *ec) {
  int sig = 1;
  if (*(p + 1) == '^') {
    sig = 0;
    p++;
  }
  while (++p < ec) {
    if (*p == ESC) {
      p++;
      if (match_class(ch, U(*p))) return sig;
    } else if (*(p + 1) == '-' && p + 2 < ec) {
      p += 2;
      if (U(*(p - 2)) <= ch && ch <= U(*p)) return sig;
    } else if (U(*p) == ch) {
      return sig;
    }
  }
  return !sig;
}

static int single_match(mstate *ms, const char *s, const char *p, const char *ep) {
  if (s >= ms->src_end) return 0;
  int ch = U(*s);
  switch (*p) {
  case '.':
    return 1;
  case ESC:
    return match_class(ch, U(*(p + 1)));
  case '[':
    tick_n(ms, ep - p);
    return match_bracket(ch, p, ep - 1);
  default:
    return U(*p) == ch;
  }
}

static const char *match_balance(mstate *ms, const char *s, const char *p) {
  if (p >= ms->p_end - 1) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
  if (s >= ms->src_end || *s != *p) return NULL;
  int b = *p, e = *(p + 1), open = 1;
  while (++s < ms->src_end) {
    tick(ms);
    if (*s == e) {
      if (--open == 0) return s + 1;
    } else if (*s == b) {
      open++;
    }
  }
  return NULL;
}

static const char *max_expand(mstate *ms, const char *s, const char *p, const char *ep) {
  ptrdiff_t i = 0;
  while (single_match(ms, s + i, p, ep)) {
    tick(ms);
    i++;
  }
  for (; i >= 0; i--) {
    const char *r = match(ms, s + i, ep + 1);
    if (r) return r;
  }
  return NULL;
}

static const char *min_expand(mstate *ms, const char *s, const char *p, const char *ep) {
  for (;;) {
    const char *r = match(ms, s, ep + 1);
    if (r) return r;
    if (!single_match(ms, s, p, ep)) return NULL;
    s++;
  }
}

static const char *start_capture(mstate *ms, const char *s, const char *p, int what) {
  if (ms->level >= MAXCAPTURES) luaL_error(ms->L, "too many captures");
  ms->capture[ms->level].init = s;
  ms->capture[ms->level].len = what;
  ms->level++;
  const char *r = match(ms, s, p);
  if (!r) ms->level--;
  return r;
}

static const char *end_capture(mstate *ms, const char *s, const char *p) {
  int l = ms->level - 1;
  while (l >= 0 && ms->capture[l].len != CAP_UNFINISHED) l--;
  if (l < 0) luaL_error(ms->L, "invalid pattern capture");
  ms->capture[l].len = s - ms->capture[l].init;
  const char *r = match(ms, s, p);
  if (!r) ms->capture[l].len = CAP_UNFINISHED;
  return r;
}

static const char *match_capture(mstate *ms, const char *s, int digit) {
  int l = digit - '1';
  if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
    luaL_error(ms->L, "invalid capture index %%%d", l + 1);
  size_t len = (size_t)ms->capture[l].len; /* a position capture never matches */
  if ((size_t)(ms->src_end - s) >= len) {
    if (len > 64) charge(ms, (unsigned)(len > 1u << 30 ? 1u << 30 : len));
    if (memcmp(ms->capture[l].init, s, len) == 0) return s + len;
  }
  return NULL;
}

static const char *match(mstate *ms, const char *s, const char *p) {
  if (ms->depth-- == 0) luaL_error(ms->L, "pattern too complex");
again:
  tick(ms);
  if (p != ms->p_end) {
    switch (*p) {
    case '(':
      s = *(p + 1) == ')' ? start_capture(ms, s, p + 2, CAP_POSITION)
                          : start_capture(ms, s, p + 1, CAP_UNFINISHED);
      break;
    case ')':
      s = end_capture(ms, s, p + 1);
      break;
    case '$':
      if (p + 1 != ms->p_end) goto plain;
      s = s == ms->src_end ? s : NULL;
      break;
    case ESC:
      switch (*(p + 1)) {
      case 'b':
        s = match_balance(ms, s, p + 2);
        if (s) {
          p += 4;
          goto again;
        }
        break;
      case 'f': {
        p += 2;
        if (*p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
        const char *ep = class_end(ms, p);
        int prev = s == ms->src_init ? 0 : U(*(s - 1));
        int cur = s < ms->src_end ? U(*s) : 0;
        if (!match_bracket(prev, p, ep - 1) && match_bracket(cur, p, ep - 1)) {
          p = ep;
          goto again;
        }
        s = NULL;
        break;
      }
      case '0':
      case '1':
      case '2':
      case '3':
      case '4':
      case '5':
      case '6':
      case '7':
      case '8':
      case '9':
        s = match_capture(ms, s, U(*(p + 1)));
        if (s) {
          p += 2;
          goto again;
        }
        break;
      default:
        goto plain;
      }
      break;
    default:
    plain : {
      const char *ep = class_end(ms, p);
      if (!single_match(ms, s, p, ep)) {
        if (*ep == '*' || *ep == '?' || *ep == '-') {
          p = ep + 1;
          goto again;
        }
        s = NULL;
      } else {
        switch (*ep) {
        case '?': {
          const char *r = match(ms, s + 1, ep + 1);
          if (r) {
            s = r;
          } else {
            p = ep + 1;
            goto again;
          }
          break;
        }
        case '+':
          s = max_expand(ms, s + 1, p, ep);
          break;
        case '*':
          s = max_expand(ms, s, p, ep);
          break;
        case '-':
          s = min_expand(ms, s, p, ep);
          break;
        default:
          s++;
          p = ep;
          goto again;
        }
      }
      break;
    }
    }
  }
  ms->depth++;
  return s;
}

/* ---- captures ---- */

static ptrdiff_t get_capture(mstate *ms, int i, const char *s, const char *e, const char **cap) {
  if (i >= ms->level) {
    if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
    *cap = s;
    return e - s;
  }
  ptrdiff_t l = ms->capture[i].len;
  *cap = ms->capture[i].init;
  if (l == CAP_UNFINISHED) luaL_error(ms->L, "unfinished capture");
  if (l == CAP_POSITION) lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
  return l;
}

static void push_capture(mstate *ms, int i, const char *s, const char *e) {
  const char *cap;
  ptrdiff_t l = get_capture(ms, i, s, e, &cap);
  if (l != CAP_POSITION) lua_pushlstring(ms->L, cap, (size_t)l);
}

static int push_captures(mstate *ms, const char *s, const char *e) {
  int n = (ms->level == 0 && s) ? 1 : ms->level;
  luaL_checkstack(ms->L, n, "too many captures");
  for (int i = 0; i < n; i++) push_capture(ms, i, s, e);
  return n;
}

/* ---- find, match, gmatch, gsub ---- */

static void prep(mstate *ms, lua_State *L, const char *s, size_t ls, const char *p, size_t lp) {
  ms->L = L;
  ms->c = rb_ctx(L);
  ms->src_init = s;
  ms->src_end = s + ls;
  ms->p_end = p + lp;
  ms->steps = 0;
}

static void reprep(mstate *ms) {
  ms->level = 0;
  ms->depth = MAXDEPTH;
}

static size_t posrelat(lua_Integer pos, size_t len) {
  if (pos > 0) return (size_t)pos;
  if (pos == 0) return 1;
  if (pos < -(lua_Integer)len) return 1;
  return len + (size_t)pos + 1;
}

static int no_specials(const char *p, size_t l) {
  size_t upto = 0;
  do {
    const char *q = strpbrk(p + upto, SPECIALS);
    if (q) return 0;
    upto += strlen(p + upto) + 1; /* a pattern may contain zeros */
  } while (upto <= l);
  return 1;
}

static const char *mem_find(mstate *ms, const char *s, size_t ls, const char *p, size_t lp) {
  if (lp == 0) return s;
  if (lp > ls) return NULL;
  const char *end = s + (ls - lp) + 1;
  while (s < end) {
    const char *q = memchr(s, *p, (size_t)(end - s));
    if (!q) return NULL;
    charge(ms, (unsigned)(lp > 1u << 30 ? 1u << 30 : lp) + (unsigned)((q - s) / 16));
    if (memcmp(q + 1, p + 1, lp - 1) == 0) return q;
    s = q + 1;
  }
  return NULL;
}

static int find_aux(lua_State *L, int find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = posrelat(luaL_optinteger(L, 3, 1), ls) - 1;
  if (init > ls) {
    lua_pushnil(L);
    return 1;
  }
  mstate ms;
  prep(&ms, L, s, ls, p, lp);
  if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
    const char *q = mem_find(&ms, s + init, ls - init, p, lp);
    if (q) {
      lua_pushinteger(L, (q - s) + 1);
      lua_pushinteger(L, (q - s) + (lua_Integer)lp);
      return 2;
    }
  } else {
    const char *s1 = s + init;
    int anchor = *p == '^';
    if (anchor) {
      p++;
      lp--;
      ms.p_end = p + lp;
    }
    do {
      reprep(&ms);
      const char *r = match(&ms, s1, p);
      if (r) {
        if (find) {
          lua_pushinteger(L, (s1 - s) + 1);
          lua_pushinteger(L, r - s);
          return push_captures(&ms, NULL, NULL) + 2;
        }
        return push_captures(&ms, s1, r);
      }
    } while (s1++ < ms.src_end && !anchor);
  }
  lua_pushnil(L);
  return 1;
}

static int s_find(lua_State *L) {
  return find_aux(L, 1);
}
static int s_match(lua_State *L) {
  return find_aux(L, 0);
}

typedef struct {
  const char *src, *p, *lastmatch;
  mstate ms;
} gstate;

static int gmatch_aux(lua_State *L) {
  gstate *g = lua_touserdata(L, lua_upvalueindex(3));
  g->ms.L = L; /* the iterator may run in another coroutine */
  for (const char *src = g->src; src <= g->ms.src_end; src++) {
    reprep(&g->ms);
    const char *e = match(&g->ms, src, g->p);
    if (e && e != g->lastmatch) {
      g->src = g->lastmatch = e;
      return push_captures(&g->ms, src, e);
    }
  }
  return 0;
}

static int s_gmatch(lua_State *L) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = posrelat(luaL_optinteger(L, 3, 1), ls) - 1;
  if (init > ls) init = ls + 1;
  lua_settop(L, 2);
  gstate *g = lua_newuserdatauv(L, sizeof *g, 0);
  prep(&g->ms, L, s, ls, p, lp);
  g->src = s + init;
  g->p = p;
  g->lastmatch = NULL;
  lua_pushcclosure(L, gmatch_aux, 3); /* s and p stay alive as upvalues */
  return 1;
}

static void add_s(mstate *ms, luaL_Buffer *b, const char *s, const char *e) {
  lua_State *L = ms->L;
  size_t l;
  const char *news = lua_tolstring(L, 3, &l);
  const char *p;
  while ((p = memchr(news, ESC, l)) != NULL) {
    luaL_addlstring(b, news, (size_t)(p - news));
    p++;
    if (*p == ESC) {
      luaL_addchar(b, *p);
    } else if (*p == '0') {
      luaL_addlstring(b, s, (size_t)(e - s));
    } else if (isdigit(U(*p))) {
      const char *cap;
      ptrdiff_t l2 = get_capture(ms, *p - '1', s, e, &cap);
      if (l2 == CAP_POSITION)
        luaL_addvalue(b);
      else
        luaL_addlstring(b, cap, (size_t)l2);
    } else {
      luaL_error(L, "invalid use of '%c' in replacement string", ESC);
    }
    l -= (size_t)(p + 1 - news);
    news = p + 1;
  }
  luaL_addlstring(b, news, l);
}

static int add_value(mstate *ms, luaL_Buffer *b, const char *s, const char *e, int tr) {
  lua_State *L = ms->L;
  switch (tr) {
  case LUA_TFUNCTION: {
    lua_pushvalue(L, 3);
    int n = push_captures(ms, s, e);
    lua_call(L, n, 1);
    break;
  }
  case LUA_TTABLE:
    push_capture(ms, 0, s, e);
    lua_gettable(L, 3);
    break;
  default:
    add_s(ms, b, s, e);
    return 1;
  }
  if (!lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    luaL_addlstring(b, s, (size_t)(e - s));
    return 0;
  }
  if (!lua_isstring(L, -1))
    return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  luaL_addvalue(b);
  return 1;
}

static int s_gsub(lua_State *L) {
  size_t ls, lp;
  const char *src = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  const char *lastmatch = NULL;
  int tr = lua_type(L, 3);
  lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
  luaL_argexpected(
      L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
      "string/function/table");
  int anchor = *p == '^';
  if (anchor) {
    p++;
    lp--;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  mstate ms;
  prep(&ms, L, src, ls, p, lp);
  lua_Integer n = 0;
  int changed = 0;
  while (n < max_s) {
    reprep(&ms);
    const char *e = match(&ms, src, p);
    if (e && e != lastmatch) {
      n++;
      changed = add_value(&ms, &b, src, e, tr) | changed;
      src = lastmatch = e;
    } else if (src < ms.src_end) {
      luaL_addchar(&b, *src++);
    } else {
      break;
    }
    if (anchor) break;
  }
  if (!changed) {
    lua_pushvalue(L, 1);
  } else {
    luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
    luaL_pushresult(&b);
  }
  lua_pushinteger(L, n);
  return 2;
}

/* Installs the four functions in the string table at idx (the one string methods use). */
void rb_sandbox_strings(lua_State *L, int string_table) {
  static const luaL_Reg fns[] = {
      {"find", s_find}, {"match", s_match}, {"gmatch", s_gmatch}, {"gsub", s_gsub}, {NULL, NULL}};
  for (const luaL_Reg *f = fns; f->name; f++) {
    lua_pushcfunction(L, f->func);
    lua_setfield(L, string_table, f->name);
  }
}
