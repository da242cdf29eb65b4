/*
 * main.c - the command line (CONTRACT §2): option parsing, --check-config,
 * the offline `state` tool, and the daemon itself (app_run).
 *
 * The `state` subcommands work on the store directly, with or without a
 * running daemon (SQLite WAL lets readers and one writer share the file).
 * They print JSON on stdout and errors on stderr. They never create a
 * database; reads open it read-only; import takes the daemon's lock file
 * (wbmb/store_lock.h) and refuses while a daemon holds it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wbmb/app.h"
#include "wbmb/config.h"
#include "wbmb/config_json.h"
#include "wbmb/log.h"
#include "wbmb/ha.h"
#include "wbmb/mirror.h"
#include "wbmb/state_import.h"
#include "wbmb/state_store.h"
#include "wbmb/store_lock.h"
#include "wbmb/util.h"

#define IMPORT_MAX_BYTES (64u * 1024 * 1024)
/* Import commits everything in one transaction: a window far longer than
 * the import itself, then one flush. */
#define IMPORT_COMMIT_WINDOW_MS 600000

static void usage(FILE *f)
{
    fprintf(f,
            "Usage:\n"
            "  wb-mqtt-bridge [-c FILE] [--log-level error|warning|info|debug] [--check-config]\n"
            "  wb-mqtt-bridge -c FILE state list | state get KEY | state export [OUT.json] |\n"
            "                 state import IN.json\n"
            "  wb-mqtt-bridge config to-json | config from-json\n"
            "  wb-mqtt-bridge --version | --help\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE    configuration file (default %s)\n"
            "  --log-level LEVEL    override log.level of the configuration\n"
            "  --check-config       validate the configuration and exit (0 valid, 6 invalid)\n"
            "  --version            print the version and exit\n"
            "  -h, --help           print this help and exit\n"
            "\n"
            "config to-json reads the YAML config on stdin and writes it as JSON; config\n"
            "from-json does the reverse (the Wiren Board config editor's converters). Both\n"
            "validate first and exit 6 with <stdin>:LINE:COLUMN errors when invalid.\n"
            "\n"
            "Exit codes: 0 clean stop, 1 runtime failure, 2 usage error, 6 invalid config.\n",
            CFG_DEFAULT_PATH);
}

static int load_config(const char *path, struct config **cfg)
{
    struct cfg_errors errs = {0};
    if (cfg_load(path, cfg, &errs) == WB_OK)
        return APP_EXIT_OK;
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.lines[i]);
    cfg_errors_free(&errs);
    return APP_EXIT_CONFIG;
}

static int open_store(const struct config *cfg, unsigned commit_ms, bool read_only,
                      struct state_store **s)
{
    char err[512];
    struct store_config sc;
    store_config_from_cfg(&cfg->persistence, &sc);
    sc.commit_interval_ms = commit_ms;
    sc.read_only = read_only;
    if (store_open(s, &sc, err, sizeof(err)) != WB_OK) {
        fprintf(stderr, "wb-mqtt-bridge: cannot open %s: %s\n",
                cfg->persistence.backend == CFG_STORE_POSTGRESQL ? "the postgresql store"
                                                                 : cfg->persistence.db_path,
                err);
        return APP_EXIT_FAILURE;
    }
    return APP_EXIT_OK;
}

static int collect_key(const char *key, json_object *value, void *ud)
{
    (void)value;
    json_object_array_add(ud, json_object_new_string(key));
    return 0;
}

static int collect_pair(const char *key, json_object *value, void *ud)
{
    json_object_object_add(ud, key, json_object_get(value));
    return 0;
}

static int print_json(FILE *f, json_object *v)
{
    const char *s = json_object_to_json_string_ext(
        v, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    return fprintf(f, "%s\n", s) < 0 ? -1 : 0;
}

static int state_import(struct state_store *s, const char *path)
{
    size_t len;
    char err[256];
    json_object *obj = NULL;
    char *text = util_read_file(path, IMPORT_MAX_BYTES, &len, 0);
    if (!text) {
        fprintf(stderr, "wb-mqtt-bridge: cannot read %s: %s\n", path, strerror(errno));
        return APP_EXIT_FAILURE;
    }
    int rc = APP_EXIT_OK;
    /* Everything is checked before anything is written: all or nothing. */
    if (store_import_parse(text, len, &obj, err, sizeof(err)) != WB_OK) {
        fprintf(stderr, "wb-mqtt-bridge: %s: %s\n", path, err);
        rc = APP_EXIT_FAILURE;
        goto out;
    }
    size_t n = 0;
    json_object_object_foreach(obj, k2, v2)
    {
        if (store_set(s, k2, v2) != WB_OK) {
            fprintf(stderr, "wb-mqtt-bridge: cannot store '%s'\n", k2);
            rc = APP_EXIT_FAILURE;
            goto out;
        }
        n++;
    }
    wb_status st = store_flush(s);
    if (st != WB_OK) {
        fprintf(stderr, "wb-mqtt-bridge: import failed, nothing written: %s\n", wb_strerror(st));
        rc = APP_EXIT_FAILURE;
        goto out;
    }
    fprintf(stderr, "wb-mqtt-bridge: imported %zu keys\n", n);
out:
    json_object_put(obj);
    free(text);
    return rc;
}

static int state_command(const char *config_path, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    bool ok_args = (strcmp(sub, "list") == 0 && argc == 1) ||
                   (strcmp(sub, "get") == 0 && argc == 2) ||
                   (strcmp(sub, "export") == 0 && (argc == 1 || argc == 2)) ||
                   (strcmp(sub, "import") == 0 && argc == 2);
    if (!ok_args) {
        fprintf(stderr, "wb-mqtt-bridge: usage: state list | state get KEY | state export "
                        "[OUT.json] | state import IN.json\n");
        return APP_EXIT_USAGE;
    }
    struct config *cfg = NULL;
    int rc = load_config(config_path, &cfg);
    if (rc != APP_EXIT_OK)
        return rc;
    struct state_store *s = NULL;
    struct store_lock *lock = NULL;
    bool importing = strcmp(sub, "import") == 0;
    const char *db = cfg->persistence.db_path;
    /* Never a new empty database: a typo in -c or the wrong folder must
     * not answer [] and exit 0. (PostgreSQL: a site nobody wrote reads as
     * empty; the server is asked, not a file.) */
    if (cfg->persistence.backend == CFG_STORE_SQLITE && access(db, F_OK) != 0) {
        fprintf(stderr,
                "wb-mqtt-bridge: no database at %s (the daemon creates it when it first "
                "starts; an empty file is an empty database)\n",
                db);
        rc = APP_EXIT_FAILURE;
        goto out;
    }
    if (importing) {
        /* Beside a running daemon an import would be undone by the next
         * message for each device (the daemon keeps its state in memory);
         * holding the lock also keeps a daemon from starting mid-import. */
        char err[512];
        long holder = 0;
        wb_status lst = store_lock_acquire(db, &lock, &holder, err, sizeof(err));
        if (lst == WB_ERR_BUSY) {
            fprintf(stderr,
                    "wb-mqtt-bridge: state import refused: the daemon (PID %ld) is running on "
                    "%s and would overwrite the imported states with its own; stop it, "
                    "import, then start it again\n",
                    holder, db);
            rc = APP_EXIT_FAILURE;
            goto out;
        }
        if (lst != WB_OK) {
            fprintf(stderr, "wb-mqtt-bridge: %s\n", err);
            rc = APP_EXIT_FAILURE;
            goto out;
        }
    }
    /* Reads open the file read-only: safe beside the daemon, and a file
     * that cannot be written can still be listed. */
    rc = open_store(cfg, importing ? IMPORT_COMMIT_WINDOW_MS : 0, !importing, &s);
    if (rc != APP_EXIT_OK)
        goto out;

    if (strcmp(sub, "list") == 0) {
        json_object *keys = json_object_new_array();
        store_list(s, "", collect_key, keys);
        print_json(stdout, keys);
        json_object_put(keys);
    } else if (strcmp(sub, "get") == 0) {
        json_object *v = NULL;
        if (store_get(s, argv[1], &v) != WB_OK) {
            fprintf(stderr, "wb-mqtt-bridge: key '%s' not found\n", argv[1]);
            rc = APP_EXIT_FAILURE;
        } else {
            print_json(stdout, v);
        }
        json_object_put(v);
    } else if (strcmp(sub, "export") == 0) {
        json_object *all = json_object_new_object();
        store_list(s, "", collect_pair, all);
        FILE *f = argc == 2 ? fopen(argv[1], "w") : stdout;
        if (!f || print_json(f, all) != 0 || (f != stdout && fclose(f) != 0)) {
            fprintf(stderr, "wb-mqtt-bridge: cannot write %s: %s\n", argc == 2 ? argv[1] : "stdout",
                    strerror(errno));
            rc = APP_EXIT_FAILURE;
        }
        json_object_put(all);
    } else {
        rc = state_import(s, argv[1]);
    }
out:
    store_close(s);
    store_lock_release(lock);
    cfg_free(cfg);
    return rc;
}

#define CONFIG_STDIN_MAX (4u * 1024 * 1024)

/* Reads all of stdin (at most max bytes) into a NUL-terminated buffer. */
static char *read_stdin(size_t max, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            if (cap >= max) {
                errno = EFBIG;
                goto fail;
            }
            cap = cap * 2 > max ? max : cap * 2;
            char *p = realloc(buf, cap + 1);
            if (!p)
                goto fail;
            buf = p;
        }
    }
    if (!buf || ferror(stdin))
        goto fail;
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    free(buf);
    return NULL;
}

/* `config to-json` / `config from-json`: stdin -> stdout, validated by the
 * real loader; invalid input exits 6 with <stdin>:LINE:COLUMN lines. */
static int config_command(int argc, char **argv)
{
    bool to_json = argc == 1 && strcmp(argv[0], "to-json") == 0;
    bool from_json = argc == 1 && strcmp(argv[0], "from-json") == 0;
    if (!to_json && !from_json) {
        fprintf(stderr, "wb-mqtt-bridge: usage: config to-json | config from-json\n");
        return APP_EXIT_USAGE;
    }
    size_t len;
    char *text = read_stdin(CONFIG_STDIN_MAX, &len);
    if (!text) {
        fprintf(stderr, "wb-mqtt-bridge: cannot read stdin: %s\n",
                errno == EFBIG ? "more than 4 MiB" : strerror(errno));
        return APP_EXIT_FAILURE;
    }
    struct cfg_errors errs = {0};
    json_object *obj = NULL;
    char *yaml = NULL;
    wb_status st = to_json ? cfg_yaml_to_json("<stdin>", text, len, &obj, &errs)
                           : cfg_json_to_yaml("<stdin>", text, len, &yaml, &errs);
    free(text);
    int rc = APP_EXIT_OK;
    if (st == WB_ERR_CONFIG) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.lines[i]);
        rc = APP_EXIT_CONFIG;
    } else if (st != WB_OK) {
        fprintf(stderr, "wb-mqtt-bridge: config %s: %s\n", argv[0], wb_strerror(st));
        rc = APP_EXIT_FAILURE;
    } else if ((to_json ? print_json(stdout, obj) : (fputs(yaml, stdout) < 0 ? -1 : 0)) != 0 ||
               fflush(stdout) != 0) {
        fprintf(stderr, "wb-mqtt-bridge: cannot write stdout: %s\n", strerror(errno));
        rc = APP_EXIT_FAILURE;
    }
    cfg_errors_free(&errs);
    json_object_put(obj);
    free(yaml);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"log-level", required_argument, NULL, 'l'},
        {"check-config", no_argument, NULL, 'k'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    struct app_options opts = {.config_path = CFG_DEFAULT_PATH};
    bool check_only = false;
    int c;
    /* The conventions of the outputs are part of every config check: the
     * daemon, --check-config, the state commands and the converters. */
    cfg_add_check(mirror_check_config);
    cfg_add_check(ha_check_config);
    /* "+" stops at the first non-option: `state get KEY` keeps its words. */
    while ((c = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            opts.config_path = optarg;
            break;
        case 'l':
            if (log_level_parse(optarg, &opts.log_level) != 0) {
                fprintf(stderr,
                        "wb-mqtt-bridge: --log-level must be error, warning, info or "
                        "debug, not '%s'\n",
                        optarg);
                return APP_EXIT_USAGE;
            }
            opts.log_level_given = true;
            break;
        case 'k':
            check_only = true;
            break;
        case 'V':
            printf("wb-mqtt-bridge %s\n", WBMB_VERSION);
            return APP_EXIT_OK;
        case 'h':
            usage(stdout);
            return APP_EXIT_OK;
        default:
            usage(stderr);
            return APP_EXIT_USAGE;
        }
    }
    if (opts.log_level_given)
        log_set_level(opts.log_level);
    if (optind < argc) {
        /* The state tool prints JSON; stderr says only what went wrong. */
        if (strcmp(argv[optind], "state") == 0 && !check_only && !opts.log_level_given)
            log_set_level(LOG_LVL_WARNING);
        if (strcmp(argv[optind], "state") == 0 && !check_only)
            return state_command(opts.config_path, argc - optind - 1, argv + optind + 1);
        if (strcmp(argv[optind], "config") == 0 && !check_only)
            return config_command(argc - optind - 1, argv + optind + 1);
        fprintf(stderr, "wb-mqtt-bridge: unknown command '%s'\n", argv[optind]);
        usage(stderr);
        return APP_EXIT_USAGE;
    }
    if (check_only) {
        struct config *cfg = NULL;
        int rc = load_config(opts.config_path, &cfg);
        if (rc == APP_EXIT_OK)
            printf("%s: configuration is valid (%zu devices, %zu scenarios)\n", opts.config_path,
                   cfg->n_devices, cfg->n_scenarios);
        cfg_free(cfg);
        return rc;
    }
    return app_run(&opts);
}
