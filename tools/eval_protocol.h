/* tinyroute eval without --pack: the evaluation protocol of Jitkrittum et
 * al. 2025 on datasets (tools/eval_protocol.c). */
#ifndef TRH_TOOLS_EVAL_PROTOCOL_H
#define TRH_TOOLS_EVAL_PROTOCOL_H

int trh_eval_protocol(int argc, char **argv);

#endif
