/* The table of optimizers (rc_optims), built from the list in optim_table.h. Alone in its
 * object file: a test binary that defines its own rc_optims (the same rows plus a toy
 * optimizer) links that one instead of this one from librecur.a. */
#include "optim.h"

#define RC_OPTIM(desc) extern const rc_optim_desc desc;
#include "optim_table.h"
#undef RC_OPTIM

#define RC_OPTIM(desc) &desc,
const rc_optim_desc *const rc_optims[] = {
#include "optim_table.h"
    NULL};
#undef RC_OPTIM
