/* tinyroute eval without --pack: the evaluation protocol of Jitkrittum et
 * al. 2025 on datasets (tools/eval_protocol.c). */
#ifndef TR_TOOLS_EVAL_PROTOCOL_H
#define TR_TOOLS_EVAL_PROTOCOL_H

int tr_eval_protocol(int argc, char **argv);

#endif
