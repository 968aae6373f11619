/* talker: a terminal game loop in which a character speaks lines that a char-RNN checkpoint
 * generates one character at a time, driven by a Lua script (examples/talker.lua).
 *
 * What a game host does with recur, in one file:
 *  - create a sandboxed runtime with a memory limit and an instruction budget per call;
 *  - load the model's checkpoint (recur_load_checkpoint_flags: the sandbox lets the loader
 *    read exactly that file; the optimizer's state, which a player never needs, is left
 *    unread) and keep a reference to it;
 *  - run the script, hand it the checkpoint (talker.use_checkpoint) and keep a reference to
 *    the function it calls every frame (talker.next_char);
 *  - each frame, call it as often as the frame's time budget allows (a typing effect caps it
 *    too), and never let the script stall or crash the game: errors are shown, not fatal;
 *  - reload the script when its file changes (hot reload) and hand it the same checkpoint
 *    again; a broken edit keeps the old script;
 *  - reload the checkpoint when training rewrites it and hand it to the running script; one
 *    that cannot be read or used keeps the old weights.
 *
 * The checkpoint is one written by scripts/train_charrnn.lua: --checkpoint FILE, by default
 * build/demo/charrnn.ckpt when it exists (`make demo` writes it); without one (or with
 * --no-checkpoint) the script speaks with scripted weights. The script builds the model with
 * models/charrnn.lua, which its require finds through the module path (--lua-path, default
 * "./?.lua": run from the source tree).
 *
 * usage: talker [--checkpoint FILE | --no-checkpoint] [--script PATH] [--lua-path PATTERN]
 *               [--headless] [--frames N] [--fps N] [--budget-ms X] [--chars-per-frame N]
 *               [--pause-ms X]
 * Build: make examples (or: cc talker.c $(pkg-config --cflags --libs recur)). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "recur.h"

#define DEFAULT_CHECKPOINT "build/demo/charrnn.ckpt"
#define FRAME_WORK 2000000u  /* instruction budget of one call in a frame */
#define LOAD_WORK 200000000u /* of loading the checkpoint or the script (once, not per frame) */

typedef struct {
  const char *script;
  const char *checkpoint; /* NULL: the scripted voice */
  const char *lua_path;   /* where the sandboxed script's require looks */
  int no_checkpoint;
  int headless;
  long frames; /* 0: until Ctrl-C */
  int fps;
  double budget_ms; /* time the model may take per frame */
  int chars_per_frame;
  double pause_ms; /* how long a finished line stays up */
} options;

static volatile sig_atomic_t stop;
static void on_sigint(int sig) {
  (void)sig;
  stop = 1;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms) {
  if (ms <= 0) return;
  struct timespec ts = {(time_t)(ms / 1e3), (long)((ms - (time_t)(ms / 1e3) * 1e3) * 1e6)};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !stop) {
  }
}

/* Hot reload: the script's identity is its modification time and size. A change counts once
 * the file has stayed the same for SETTLE_MS, so that a file caught half-written (an editor
 * that truncates, then writes) is not loaded. */
#define SETTLE_MS 50.0
typedef struct {
  struct timespec mtime, seen_mtime; /* of the loaded version; of the last one seen */
  off_t size, seen_size;
  double seen_at; /* when the last one seen first appeared */
} watch;

static int file_stamp(const char *path, struct timespec *mtime, off_t *size) {
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  *mtime = st.st_mtim;
  *size = st.st_size;
  return 0;
}

static int same_stamp(struct timespec a, off_t as, struct timespec b, off_t bs) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec && as == bs;
}

static void watch_init(watch *w, const char *path) {
  memset(w, 0, sizeof *w);
  file_stamp(path, &w->mtime, &w->size);
  w->seen_mtime = w->mtime, w->seen_size = w->size;
}

/* 1 when the file has changed since it was loaded and has settled. */
static int watch_changed(watch *w, const char *path) {
  struct timespec m;
  off_t sz;
  if (file_stamp(path, &m, &sz) != 0) return 0; /* gone for now (an editor's rename) */
  if (!same_stamp(m, sz, w->seen_mtime, w->seen_size)) {
    w->seen_mtime = m, w->seen_size = sz, w->seen_at = now_ms();
    return 0;
  }
  if (same_stamp(m, sz, w->mtime, w->size) || now_ms() - w->seen_at < SETTLE_MS) return 0;
  w->mtime = m, w->size = sz;
  return 1;
}

typedef struct {
  recur_runtime *rt;
  recur_ref next_char;  /* talker.next_char */
  recur_ref checkpoint; /* the loaded checkpoint (id 0: none), handed to every script version */
  char voice[160];      /* talker.describe() */
  char line[512];       /* what the character is saying */
  size_t len;
  int pause;        /* frames to wait before the next line */
  char status[256]; /* last error or event, shown under the scene */
  long lines_spoken, chars, reloads, errors;
} game;

static const char *err(game *g) {
  const char *m = "";
  recur_last_error(g->rt, &m);
  return m;
}

/* First line of a message (errors come with a traceback). */
static void set_status(game *g, const char *prefix, const char *msg) {
  size_t n = strcspn(msg, "\n");
  snprintf(g->status, sizeof g->status, "%s%.*s", prefix, (int)(n > 200 ? 200 : n), msg);
}

/* Loads the checkpoint (model, vocabulary, config: not the optimizer's state) into *ck; the
 * host keeps it (a reference) for every version of the script. Reading and decoding it is more
 * work than a frame's call: a larger budget. */
static int load_checkpoint(game *g, const char *path, recur_ref *ck) {
  recur_set_budget(g->rt, LOAD_WORK);
  int rc = recur_load_checkpoint_flags(g->rt, path, RECUR_LOAD_NO_OPTIMIZER, NULL);
  if (rc == RECUR_OK) rc = recur_result_ref(g->rt, 1, ck);
  recur_set_budget(g->rt, FRAME_WORK);
  return rc;
}

/* The checkpoint changed on disk (training saved again): load it and hand it to the running
 * script; on any failure the old weights and the old reference stay. */
static int reload_checkpoint(game *g, const char *path) {
  recur_ref ck = {0};
  int rc = load_checkpoint(g, path, &ck);
  if (rc != RECUR_OK) {
    g->errors++;
    set_status(g, "checkpoint reload failed, keeping the old weights: ", err(g));
    return rc;
  }
  recur_set_budget(g->rt, LOAD_WORK);
  recur_value v = RECUR_REFV(ck);
  rc = recur_call(g->rt, "talker.use_checkpoint", 1, &v, NULL);
  recur_set_budget(g->rt, FRAME_WORK);
  if (rc != RECUR_OK) {
    g->errors++;
    set_status(g, "the script cannot use the new checkpoint, keeping the old weights: ", err(g));
    recur_ref_free(g->rt, ck);
    return rc;
  }
  recur_ref_free(g->rt, g->checkpoint);
  g->checkpoint = ck;
  g->reloads++;
  set_status(g, "reloaded the checkpoint ", path);
  return RECUR_OK;
}

/* (Re)loads the script and hands it the checkpoint; on failure the previous version keeps
 * running (its next_char is a closure over its own state). */
static int load_script(game *g, const char *path, int first) {
  recur_set_budget(g->rt, LOAD_WORK); /* building the model copies all its weights */
  const char *what = first ? "" : "reload failed, keeping the old script: ";
  int rc = recur_run_file(g->rt, path);
  if (rc == RECUR_OK && g->checkpoint.id) {
    recur_value ck = RECUR_REFV(g->checkpoint);
    rc = recur_call(g->rt, "talker.use_checkpoint", 1, &ck, NULL);
    if (rc != RECUR_OK) what = "the script cannot use the checkpoint: ";
  }
  recur_ref fn = {0};
  if (rc == RECUR_OK) {
    rc = recur_ref_global(g->rt, "talker.next_char", &fn);
    if (rc != RECUR_OK) what = "script has no talker.next_char: ";
  }
  const char *s = NULL;
  size_t len = 0;
  if (rc == RECUR_OK && recur_call(g->rt, "talker.describe", 0, NULL, NULL) == RECUR_OK &&
      recur_result_string(g->rt, 1, &s, &len) == RECUR_OK)
    snprintf(g->voice, sizeof g->voice, "%.*s", (int)(len < 150 ? len : 150), s);
  if (rc != RECUR_OK) {
    g->errors++;
    if (first) /* the whole message, with its traceback */
      fprintf(stderr, "talker: %s%s\n", what, err(g));
    set_status(g, what, err(g));
  }
  recur_set_budget(g->rt, FRAME_WORK);
  if (rc != RECUR_OK) return rc;
  if (g->next_char.id) recur_ref_free(g->rt, g->next_char);
  g->next_char = fn;
  return RECUR_OK;
}

/* Frames a finished line stays up (at least the one that finished it). */
static int pause_frames(const options *o) {
  double n = o->pause_ms * o->fps / 1000.0 + 0.5;
  return n < 1 ? 1 : (int)n;
}

/* One frame of model work: characters until the line ends, the typing cap is reached, or the
 * frame's time budget is spent. Returns the milliseconds used. */
static double think(game *g, const options *o, int *typed) {
  double t0 = now_ms();
  *typed = 0;
  if (g->pause > 0) {
    if (--g->pause == 0) g->len = 0, g->line[0] = 0;
    return 0;
  }
  while (*typed < o->chars_per_frame && now_ms() - t0 < o->budget_ms && g->next_char.id) {
    int n = 0;
    int rc = recur_call_ref(g->rt, g->next_char, 0, NULL, &n);
    const char *s = NULL;
    size_t len = 0;
    if (rc == RECUR_OK) rc = recur_result_string(g->rt, 1, &s, &len);
    if (rc != RECUR_OK) { /* a broken script costs the character its line, not the game */
      g->errors++;
      set_status(g, "script error: ", err(g));
      g->pause = pause_frames(o);
      break;
    }
    (*typed)++;
    g->chars++;
    if (len == 1 && s[0] == '\n') {
      g->lines_spoken++;
      g->pause = pause_frames(o); /* the line stays up a while, then the next one */
      break;
    }
    if (g->len + len < sizeof g->line) {
      memcpy(g->line + g->len, s, len);
      g->len += len;
      g->line[g->len] = 0;
    }
  }
  return now_ms() - t0;
}

static void draw(const game *g, long frame, double ms, int typed, const options *o) {
  recur_stats st;
  recur_get_stats(g->rt, &st);
  if (o->headless) {
    printf("frame %ld: %d chars in %.3f ms | line \"%s\" | lines %ld, reloads %ld, errors %ld | "
           "lua %zu KB, tensors %zu KB%s%s\n",
           frame, typed, ms, g->line, g->lines_spoken, g->reloads, g->errors, st.lua_bytes >> 10,
           st.tensor_bytes >> 10, g->status[0] ? " | " : "", g->status);
    fflush(stdout);
    return;
  }
  int width = (int)g->len + 4 < 20 ? 20 : (int)g->len + 4;
  printf("\x1b[H\x1b[2J");
  printf("  recur talker  (frame %ld, Ctrl-C quits; edit %s to change the voice)\n\n", frame,
         o->script);
  printf("      +");
  for (int i = 0; i < width; i++) putchar('-');
  printf("+\n      | %-*s |\n      +--v", width - 2, g->line);
  for (int i = 0; i < width - 3; i++) putchar('-');
  printf("+\n");
  printf("        @\n       /|\\      shopkeeper\n       / \\\n\n");
  printf("  voice: %s\n", g->voice);
  printf("  model: %d chars this frame in %.2f ms (budget %.1f ms) | lines %ld, reloads %ld\n",
         typed, ms, o->budget_ms, g->lines_spoken, g->reloads);
  printf("  memory: Lua %zu KB, tensors %zu KB (limit %zu KB)\n", st.lua_bytes >> 10,
         st.tensor_bytes >> 10, st.memory_limit >> 10);
  if (g->status[0]) printf("  %s\n", g->status);
  fflush(stdout);
}

static void usage(FILE *f) {
  fprintf(f, "usage: talker [--checkpoint FILE | --no-checkpoint] [--script PATH] [--lua-path P]\n"
             "              [--headless] [--frames N] [--fps N] [--budget-ms X]\n"
             "              [--chars-per-frame N] [--pause-ms X]\n"
             "A character speaks lines that a char-RNN checkpoint (scripts/train_charrnn.lua)\n"
             "generates one character at a time, driven by a Lua script that is reloaded when it\n"
             "changes. Default checkpoint: " DEFAULT_CHECKPOINT " if it exists (make demo), else\n"
             "scripted weights (also with --no-checkpoint). --lua-path is where the sandboxed\n"
             "script's require finds models/charrnn.lua. --headless prints one line per frame\n"
             "(for tests); --frames 0 runs until Ctrl-C. Defaults: examples/talker.lua, ./?.lua,\n"
             "30 fps, 4 ms of model time and 2 characters per frame, a finished line stays\n"
             "up 1000 ms.\n");
}

static int parse(int argc, char **argv, options *o) {
  *o = (options){"examples/talker.lua", NULL, "./?.lua", 0, 0, 0, 30, 4.0, 2, 1000.0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(a, "--headless") == 0) {
      o->headless = 1;
    } else if (strcmp(a, "--no-checkpoint") == 0) {
      o->no_checkpoint = 1;
    } else if (v && strcmp(a, "--checkpoint") == 0) {
      o->checkpoint = v, i++;
    } else if (v && strcmp(a, "--script") == 0) {
      o->script = v, i++;
    } else if (v && strcmp(a, "--lua-path") == 0) {
      o->lua_path = v, i++;
    } else if (v && strcmp(a, "--frames") == 0) {
      o->frames = atol(v), i++;
    } else if (v && strcmp(a, "--fps") == 0) {
      o->fps = atoi(v), i++;
    } else if (v && strcmp(a, "--budget-ms") == 0) {
      o->budget_ms = atof(v), i++;
    } else if (v && strcmp(a, "--chars-per-frame") == 0) {
      o->chars_per_frame = atoi(v), i++;
    } else if (v && strcmp(a, "--pause-ms") == 0) {
      o->pause_ms = atof(v), i++;
    } else {
      fprintf(stderr, "talker: unknown or incomplete option '%s'\n", a);
      usage(stderr);
      return -1;
    }
  }
  if (o->fps < 1 || o->fps > 1000 || o->budget_ms <= 0 || o->chars_per_frame < 1 || o->frames < 0 ||
      !(o->pause_ms >= 0 && o->pause_ms <= 600000)) {
    fprintf(stderr, "talker: --fps 1..1000, --budget-ms > 0, --chars-per-frame >= 1, "
                    "--frames >= 0, --pause-ms 0..600000\n");
    return -1;
  }
  if (o->no_checkpoint && o->checkpoint) {
    fprintf(stderr, "talker: --checkpoint and --no-checkpoint exclude each other\n");
    return -1;
  }
  if (!o->no_checkpoint && !o->checkpoint && access(DEFAULT_CHECKPOINT, R_OK) == 0)
    o->checkpoint = DEFAULT_CHECKPOINT;
  return 0;
}

int main(int argc, char **argv) {
  options o;
  if (parse(argc, argv, &o)) return 2;
  game g;
  memset(&g, 0, sizeof g);

  /* A sandboxed runtime: 64 MB for Lua and tensors together, 2M instructions per call; its
   * require finds pure Lua modules (the char model) through lua_path only. */
  recur_options ro;
  recur_options_init(&ro);
  ro.memory_limit = 64u << 20;
  ro.instruction_budget = FRAME_WORK;
  ro.threads = 1;
  ro.module_path = o.lua_path;
  int rc = recur_new(&ro, &g.rt);
  if (rc != RECUR_OK) {
    const char *name;
    recur_status_string(rc, &name);
    fprintf(stderr, "talker: cannot create the runtime (%s)\n", name);
    return 1;
  }
  watch w, wck;
  if (o.checkpoint) watch_init(&wck, o.checkpoint); /* before loading, as for the script */
  if (o.checkpoint && load_checkpoint(&g, o.checkpoint, &g.checkpoint) != RECUR_OK) {
    fprintf(stderr, "talker: cannot load the checkpoint %s: %s\n", o.checkpoint, err(&g));
    recur_free(g.rt);
    return 1;
  }
  watch_init(&w, o.script); /* before loading: an edit made meanwhile is not missed */
  if (load_script(&g, o.script, 1) != RECUR_OK) {
    if (g.checkpoint.id) recur_ref_free(g.rt, g.checkpoint);
    recur_free(g.rt);
    return 1;
  }
  g.status[0] = 0;
  g.errors = 0;
  printf("talker: voice: %s%s%s\n", g.voice, o.checkpoint ? ", checkpoint " : "",
         o.checkpoint ? o.checkpoint : "");

  signal(SIGINT, on_sigint);
  if (!o.headless) printf("\x1b[?25l"); /* hide the cursor */
  double frame_ms = 1000.0 / o.fps;
  for (long frame = 1; !stop && (o.frames == 0 || frame <= o.frames); frame++) {
    double t0 = now_ms();
    if (watch_changed(&w, o.script)) {
      if (load_script(&g, o.script, 0) == RECUR_OK) {
        g.reloads++;
        char msg[200];
        snprintf(msg, sizeof msg, "%s (%s)", o.script, g.voice);
        set_status(&g, "reloaded ", msg);
      }
    }
    if (o.checkpoint && watch_changed(&wck, o.checkpoint)) reload_checkpoint(&g, o.checkpoint);
    int typed = 0;
    double ms = think(&g, &o, &typed);
    draw(&g, frame, ms, typed, &o);
    recur_collect(g.rt); /* between frames, so that garbage never builds up into a pause */
    sleep_ms(frame_ms - (now_ms() - t0));
  }
  if (!o.headless) printf("\x1b[?25h\n");
  printf("talker: %ld lines, %ld characters, %ld reloads, %ld errors\n", g.lines_spoken, g.chars,
         g.reloads, g.errors);
  if (g.next_char.id) recur_ref_free(g.rt, g.next_char);
  if (g.checkpoint.id) recur_ref_free(g.rt, g.checkpoint);
  recur_free(g.rt);
  return 0;
}
