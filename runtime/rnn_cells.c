/* The table of fused cells (rn_cells), built from the list in rnn_cells.h. Alone in its
 * object file: a test binary that defines its own rn_cells (the same rows plus a toy cell)
 * links that one instead of this one from librecur.a. */
#include "rnn_impl.h"

#define RN_CELL(ops) extern const rn_ops ops;
#include "rnn_cells.h"
#undef RN_CELL

#define RN_CELL(ops) &ops,
const rn_ops *const rn_cells[] = {
#include "rnn_cells.h"
    NULL};
#undef RN_CELL
