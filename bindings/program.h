/* What the recur program's two C files share (bindings/recur_cli.c, bindings/kernel_io.c);
 * neither is part of recur.so. */
#ifndef RECUR_PROGRAM_H
#define RECUR_PROGRAM_H

#include <lua.h>

/* lua.c's message handler: the error message with a traceback appended (recur_cli.c). */
int rb_msghandler(lua_State *L);

#endif
