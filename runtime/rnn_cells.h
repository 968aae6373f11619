/* The fused cells, one row each: RN_CELL(ops), ops being the rn_ops that the cell's own file
 * (runtime/rnn_<cell>.c) defines. The kind names, their order (recur.rnn.cell_types), the
 * lookup by name and the list of kinds in error messages all come from this list. An X-macro
 * list (as Lua's lopcodes.h): included by runtime/rnn_cells.c, and by the test that adds a
 * toy cell (tests/c/test_extend.c). No include guard on purpose. */
RN_CELL(rn_ops_rnn)
RN_CELL(rn_ops_gru)
RN_CELL(rn_ops_lstm)
RN_CELL(rn_ops_peephole)
RN_CELL(rn_ops_pseudo)
RN_CELL(rn_ops_proto)
RN_CELL(rn_ops_ln_lstm)
