/* tinyroute: the host CLI. One subcommand per job; see `tinyroute --help`. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "util.h"
#include "tinyroute.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
} commands[] = {
    {"keygen", cmd_keygen, "write an ECDSA P-256 signing key pair (PEM)"},
    {"pubkey", cmd_pubkey, "print a public key as the device takes it (tr_pubkey, hex, DER)"},
    {"embedder", cmd_embedder, "convert word vectors into the built-in embedder table"},
    {"import", cmd_import, "turn a shared data set into the dataset layout"},
    {"build", cmd_build, "build and sign a routing pack from a dataset"},
    {"verify", cmd_verify, "check a pack's signature and structure"},
    {"inspect", cmd_inspect, "print a pack's or a delta's header and sections (unverified)"},
    {"route", cmd_route, "route prompts with a pack"},
    {"embed", cmd_embed, "print the built-in embedding of prompts"},
    {"eval", cmd_eval, "accuracy and cost of a pack on held-out prompts"},
    {"add-model", cmd_add_model, "signed delta: add models the base pack never saw"},
    {"retire-model", cmd_retire_model, "signed delta: retire models"},
    {"calibrate", cmd_calibrate, "signed delta: the lambda that gives a cloud share"},
    {"report", cmd_report, "evaluation results (eval --json) as an HTML page"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: tinyroute COMMAND [OPTIONS]   (tinyroute help COMMAND, tinyroute --version)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].what);
    fprintf(f, "\nexit: 0 done, 1 the command failed (bad input, refused pack, write error),\n"
               "      2 usage (bad or missing option, --out not writable, an input or existing)\n");
}

static int version(void)
{
    printf("tinyroute %s (kernel %s)\n", TR_VERSION_STRING, tr_kernel_name());
    return 0;
}

static int find(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(name, commands[i].name))
            return (int)i;
    return -1;
}

int main(int argc, char **argv)
{
    /* Every subcommand reports a bad option itself, in one style
     * (trh_bad_option), so getopt prints nothing of its own. */
    opterr = 0;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        (!strcmp(argv[1], "help") && argc == 2)) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
        return version();
    if (!strcmp(argv[1], "help")) {
        /* `tinyroute help CMD` is `tinyroute CMD --help` */
        int i = find(argv[2]);
        if (argc > 3 || i < 0) {
            fprintf(stderr, "tinyroute help: %s '%s'\nsee 'tinyroute --help'\n",
                    i < 0 ? "no such command" : "takes one command, not also",
                    i < 0 ? argv[2] : argv[3]);
            return 2;
        }
        char *args[] = {argv[2], "--help", NULL};
        optind = 1;
        trh_set_command(commands[i].name);
        return commands[i].fn(2, args);
    }
    int i = find(argv[1]);
    if (i < 0) {
        fprintf(stderr, "tinyroute: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    /* `tinyroute CMD --version` (or -V) anywhere before a "--": the same
     * line as `tinyroute --version`, before the subcommand's own parser
     * (which would call it an unknown option). */
    for (int a = 2; a < argc && strcmp(argv[a], "--"); a++)
        if (!strcmp(argv[a], "--version") || !strcmp(argv[a], "-V"))
            return version();
    trh_set_command(commands[i].name);
    return commands[i].fn(argc - 1, argv + 1);
}
