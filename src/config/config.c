/*
 * config.c - cfg_load()/cfg_parse(): YAML text -> validated struct config.
 *
 * The pipeline is: libyaml -> ydoc tree (yaml_doc.c) -> descriptor walk of
 * the top-level sections (tables below, engine in config_walk.c; the
 * homeassistant: section's table and checks in config_ha.c) -> devices
 * (config_devices.c, actions in config_actions.c) -> scenarios
 * (config_scenarios.c, checked against the devices) -> secrets. The devices
 * list is the exception to "tree first": its entries are streamed out of
 * the parser into config_devices.c one by one, so a big config never holds
 * its devices as a tree (nor, with cfg_load, its text). Everything is parsed
 * into a fresh struct and all of it is validated; the struct is returned
 * only when no error was found, otherwise it is freed and the caller gets
 * every error line. Secrets (mqtt.password, http.token) are read from files
 * or the environment and never appear in an error line: only the file name
 * does. The config owns the one id -> device index (cfg_device_index()),
 * built right after the devices are parsed so the scenario checks already
 * use it; cfg_free() frees it with the rest.
 */
#include "wbmb/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_devices.h"
#include "config/config_ha.h"
#include "config/config_scenarios.h"
#include "config/config_walk.h"
#include "config/yaml_doc.h"
#include "wbmb/util.h"

#define CFG_MAX_FILE (4u * 1024 * 1024) /* a config past 4 MiB is a mistake */
#define CFG_MAX_SECRET 4096

/* The top-level walk target: the config plus the nodes walked afterwards. */
struct top_tmp {
    struct config cfg;
    const struct ydoc_node *devices, *scenarios;
    const struct ydoc_node *hist_fields, *hist_exclude; /* persistence.history lists */
};

/* persistence.history's keys sit on struct cfg_persistence (the section's
 * base); its lists are nodes of top_tmp, walked after the sections. */
#define PH_OFF(m) (offsetof(struct top_tmp, m) - offsetof(struct top_tmp, cfg.persistence))

#define TF(k, t, m, ...)                                                                           \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct top_tmp, m), __VA_ARGS__                       \
    }
#define MF(k, t, m, ...)                                                                           \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct cfg_mqtt, m), __VA_ARGS__                      \
    }
#define PF(k, t, m, ...)                                                                           \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct cfg_persistence, m), __VA_ARGS__               \
    }
#define HF(k, t, m, ...)                                                                           \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct cfg_http, m), __VA_ARGS__                      \
    }

static const struct cfgw_field tls_fields[] = {
    {.key = "ca_file", .type = W_STR, .off = 0},
    {.key = "cert_file",
     .type = W_STR,
     .off = offsetof(struct cfg_mqtt, cert_file) - offsetof(struct cfg_mqtt, ca_file)},
    {.key = "key_file",
     .type = W_STR,
     .off = offsetof(struct cfg_mqtt, key_file) - offsetof(struct cfg_mqtt, ca_file)},
    {.key = "verify_hostname",
     .type = W_BOOL,
     .off = offsetof(struct cfg_mqtt, tls_verify_hostname) - offsetof(struct cfg_mqtt, ca_file),
     .def_int = 1},
    {NULL},
};

static const struct cfgw_enum mqtt_protocols[] = {
    {"5", CFG_MQTT_5},
    {"5.0", CFG_MQTT_5},
    {"3.1.1", CFG_MQTT_311},
    {NULL, 0},
};

static const struct cfgw_field mqtt_fields[] = {
    MF("host", W_STR, host, .def_str = "127.0.0.1"),
    MF("port", W_INT, port, .def_int = 1883, .min = 1, .max = 65535),
    MF("client_id", W_STR, client_id, .def_str = "wb-mqtt-bridge"),
    MF("username", W_STR, username),
    MF("password_file", W_STR, password_file),
    MF("keepalive_s", W_UINT, keepalive_s, .def_int = 30, .min = 0, .max = 65535),
    MF("protocol", W_ENUM, protocol, .def_int = CFG_MQTT_5, .enums = mqtt_protocols,
       .enum_list = "5|3.1.1"),
    MF("flap_disconnects", W_UINT, flap_disconnects, .def_int = 3, .min = 1, .max = 1000),
    MF("flap_window_s", W_UINT, flap_window_s, .def_int = 60, .min = 1, .max = 86400),
    MF("tls", W_SECTION, ca_file, .sub = tls_fields, .track = true,
       .has_off = offsetof(struct cfg_mqtt, tls)),
    {NULL},
};

static const struct cfgw_field history_fields[] = {
    PF("enabled", W_BOOL, history_enabled, .def_int = 1),
    PF("max_rows_per_device", W_UINT, history_max_rows, .def_int = 10000, .min = 0,
       .max = 1000000000),
    PF("max_age_days", W_UINT, history_max_age_days, .def_int = 30, .min = 0, .max = 36500),
    PF("mode", W_ENUM, history.mode, .def_int = CFG_HIST_ALL,
       .enums = (const struct cfgw_enum[]){{"all", CFG_HIST_ALL},
                                           {"interval", CFG_HIST_INTERVAL},
                                           {"off", CFG_HIST_OFF},
                                           {NULL, 0}},
       .enum_list = "all|interval|off"),
    PF("interval_ms", W_UINT, history.interval_ms, .def_int = 60000, .min = 1000, .max = 86400000),
    {.key = "fields", .type = W_NODE, .off = PH_OFF(hist_fields)},
    {.key = "exclude", .type = W_NODE, .off = PH_OFF(hist_exclude)},
    {NULL},
};

static const struct cfgw_field pg_fields[] = {
    PF("conninfo", W_STR, pg_conninfo),
    PF("password_file", W_STR, pg_password_file),
    PF("site", W_STR, pg_site),
    PF("connect_timeout_s", W_UINT, pg_connect_timeout_s, .def_int = 60, .min = 0, .max = 86400),
    {NULL},
};

/* The names store_open() knows (store_config_from_cfg() maps them back). */
static const struct cfgw_enum store_backends[] = {
    {"sqlite", CFG_STORE_SQLITE},
    {"memory", CFG_STORE_MEMORY},
    {"postgresql", CFG_STORE_POSTGRESQL},
    {NULL, 0},
};

static const struct cfgw_field persistence_fields[] = {
    PF("backend", W_ENUM, backend, .def_int = CFG_STORE_SQLITE, .enums = store_backends,
       .enum_list = "sqlite|memory|postgresql"),
    PF("db_path", W_STR, db_path, .def_str = "data/state_store.db"),
    PF("commit_interval_ms", W_UINT, commit_interval_ms, .def_int = 100, .min = 0, .max = 60000),
    PF("sync_interval_ms", W_UINT, sync_interval_ms, .def_int = 1000, .min = 0, .max = 60000),
    PF("max_queued_rows", W_UINT, max_queued_rows, .def_int = 100000, .min = 0, .max = 100000000),
    {.key = "history", .type = W_SECTION, .off = 0, .sub = history_fields},
    {.key = "postgresql", .type = W_SECTION, .off = 0, .sub = pg_fields},
    {NULL},
};

static const struct cfgw_field http_fields[] = {
    HF("listen", W_STR, listen, .def_str = "127.0.0.1:8080"),
    HF("token_file", W_STR, token_file),
    {NULL},
};

static const struct cfgw_enum log_levels[] = {
    {"error", LOG_LVL_ERROR}, {"warning", LOG_LVL_WARNING}, {"warn", LOG_LVL_WARNING},
    {"info", LOG_LVL_INFO},   {"debug", LOG_LVL_DEBUG},     {NULL, 0},
};

/* log and bridge hold their few fields straight in struct config. */
static const struct cfgw_field log_fields[] = {
    {.key = "level",
     .type = W_ENUM,
     .off = offsetof(struct config, log_level),
     .def_int = LOG_LVL_INFO,
     .enums = log_levels,
     .enum_list = "error|warning|info|debug"},
    {NULL},
};

static const struct cfgw_field bridge_fields[] = {
    {.key = "device_id",
     .type = W_STR,
     .off = offsetof(struct config, bridge_device_id),
     .def_str = "wb-mqtt-bridge"},
    {.key = "mirror_min_interval_ms",
     .type = W_UINT,
     .off = offsetof(struct config, mirror_min_interval_ms),
     .def_int = 250,
     .min = 0,
     .max = 60000},
    {.key = "wb_legacy_meta",
     .type = W_BOOL,
     .off = offsetof(struct config, wb_legacy_meta),
     .def_int = 1},
    {NULL},
};

static const struct cfgw_field top_fields[] = {
    TF("mqtt", W_SECTION, cfg.mqtt, .sub = mqtt_fields),
    TF("persistence", W_SECTION, cfg.persistence, .sub = persistence_fields),
    TF("http", W_SECTION, cfg.http, .sub = http_fields),
    TF("log", W_SECTION, cfg, .sub = log_fields),
    TF("bridge", W_SECTION, cfg, .sub = bridge_fields),
    TF("homeassistant", W_SECTION, cfg.homeassistant, .sub = cfgh_top_fields),
    TF("devices", W_NODE, devices),
    TF("scenarios", W_NODE, scenarios),
    {NULL},
};

/* ---- checks the tables cannot express ------------------------------------ */

/* "host:port" with a non-empty host ("[::1]" for IPv6) and port 1..65535. */
static bool listen_valid(const char *s)
{
    const char *colon = strrchr(s, ':');
    long long port;
    if (!colon || colon == s)
        return false;
    return cfgw_parse_ll(colon + 1, &port) && port >= 1 && port <= 65535;
}

static const struct ydoc_node *node_at(const struct ydoc_node *root, const char *section,
                                       const char *key)
{
    const struct ydoc_node *n = ydoc_map_get(ydoc_map_get(root, section), key);
    return n ? n : root;
}

/* Reads a secret file; an error names the file and the reason only. */
static char *read_secret(struct cfgw_ctx *c, const char *path, const struct ydoc_node *at,
                         const char *key)
{
    char *s = util_read_file(path, CFG_MAX_SECRET, NULL, 1);
    if (!s) {
        int e = errno;
        cfgw_err_node(c, at, "cannot read %s '%s': %s", key, path,
                      e == EFBIG ? "file is larger than 4 KiB" : strerror(e));
    }
    return s;
}

/* persistence.postgresql: a conninfo and a site when it is the backend. */
static void check_postgresql(struct cfgw_ctx *c, const struct ydoc_node *root,
                             const struct cfg_persistence *p)
{
    if (p->backend != CFG_STORE_POSTGRESQL)
        return;
    const struct ydoc_node *pg = node_at(root, "persistence", "postgresql");
    if (!p->pg_conninfo || !p->pg_conninfo[0])
        cfgw_err_node(c, pg,
                      "persistence.postgresql.conninfo is required with backend postgresql "
                      "(e.g. \"host=db.example port=5432 dbname=wbmb user=wbmb\")");
    const char *site = p->pg_site;
    size_t n = site ? strlen(site) : 0;
    bool ok = n >= 1 && n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = (site[i] >= 'a' && site[i] <= 'z') || (site[i] >= 'A' && site[i] <= 'Z') ||
             (site[i] >= '0' && site[i] <= '9') || strchr("_.-", site[i]);
    if (!ok)
        cfgw_err_node(c, ydoc_map_get(pg, "site") ? ydoc_map_get(pg, "site") : pg,
                      "persistence.postgresql.site is required with backend postgresql: 1 to 64 "
                      "of A-Z a-z 0-9 _ . - naming this bridge's rows in the shared database");
}

static void check_top(struct cfgw_ctx *c, const struct ydoc_node *root, struct config *cfg)
{
    if (cfg->http.listen && cfg->http.listen[0] && !listen_valid(cfg->http.listen))
        cfgw_err_node(c, node_at(root, "http", "listen"),
                      "listen must be \"host:port\" with a port between 1 and 65535, or \"\" to "
                      "disable the HTTP API, got '%s'",
                      cfg->http.listen);
    if (cfg->mqtt.host && !cfg->mqtt.host[0])
        cfgw_err_node(c, node_at(root, "mqtt", "host"), "host must not be empty");
    if (cfg->mqtt.client_id && !cfg->mqtt.client_id[0])
        cfgw_err_node(c, node_at(root, "mqtt", "client_id"), "client_id must not be empty");
    if (cfg->persistence.db_path && !cfg->persistence.db_path[0])
        cfgw_err_node(c, node_at(root, "persistence", "db_path"), "db_path must not be empty");
    check_postgresql(c, root, &cfg->persistence);
    if (cfg->bridge_device_id &&
        (!cfg->bridge_device_id[0] || strpbrk(cfg->bridge_device_id, "/+# ")))
        cfgw_err_node(c, node_at(root, "bridge", "device_id"),
                      "device_id must be non-empty without '/', '+', '#' or spaces, got '%s'",
                      cfg->bridge_device_id);
    for (size_t i = 0; i < cfg->n_devices; i++)
        if (cfg->bridge_device_id && cfg->devices[i].id &&
            strcmp(cfg->devices[i].id, cfg->bridge_device_id) == 0)
            cfgw_error(c, cfg->devices[i].mark.line, cfg->devices[i].mark.column,
                       "device id '%s' is also the bridge's device_id", cfg->devices[i].id);
}

/* mqtt.tls: every file named must be readable now. Found missing only when
 * connecting, it made a bridge that passed --check-config retry for ever. */
static void check_tls(struct cfgw_ctx *c, const struct ydoc_node *root, const struct cfg_mqtt *m)
{
    if (!m->tls)
        return;
    const struct ydoc_node *tls = node_at(root, "mqtt", "tls");
    const struct {
        const char *key, *path;
    } files[] = {{"ca_file", m->ca_file}, {"cert_file", m->cert_file}, {"key_file", m->key_file}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (!files[i].path)
            continue;
        const struct ydoc_node *at = ydoc_map_get(tls, files[i].key);
        if (!at)
            at = tls;
        struct stat sb;
        int fd = open(files[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            cfgw_err_node(c, at, "cannot read tls.%s '%s': %s", files[i].key, files[i].path,
                          strerror(errno));
            continue;
        }
        bool regular = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
        close(fd);
        if (!regular)
            cfgw_err_node(c, at, "tls.%s '%s' is not a regular file", files[i].key, files[i].path);
    }
    if (m->key_file && !m->cert_file)
        cfgw_err_node(c, tls, "tls.key_file needs tls.cert_file (the client certificate)");
}

static void load_secrets(struct cfgw_ctx *c, const struct ydoc_node *root, struct config *cfg)
{
    if (cfg->mqtt.password_file) {
        cfg->mqtt.password = read_secret(c, cfg->mqtt.password_file,
                                         node_at(root, "mqtt", "password_file"), "password_file");
    } else {
        const char *env = getenv("WB_MQTT_BRIDGE_PASSWORD");
        if (env)
            cfg->mqtt.password = cfgw_strdup(c, env);
    }
    struct cfg_persistence *p = &cfg->persistence;
    if (p->backend == CFG_STORE_POSTGRESQL && p->pg_password_file) {
        const struct ydoc_node *pg = node_at(root, "persistence", "postgresql");
        p->pg_password = read_secret(c, p->pg_password_file,
                                     ydoc_map_get(pg, "password_file") ?: pg, "password_file");
        /* A password file usually ends with a newline; libpq would send it. */
        if (p->pg_password)
            p->pg_password[strcspn(p->pg_password, "\r\n")] = '\0';
    }
    if (cfg->http.token_file)
        cfg->http.token =
            read_secret(c, cfg->http.token_file, node_at(root, "http", "token_file"), "token_file");
}

/* ---- the device index ---------------------------------------------------- */

static const char *device_key(const void *owner, uint32_t pos)
{
    return ((const struct config *)owner)->devices[pos].id;
}

/* Builds cfg->device_ix once every device is parsed (and the devices array
 * has its final address). The keys are the devices' own ids, not copies. A
 * device without an id is left out, and of two devices with the same id
 * (an error reported by config_devices.c) the first is indexed, so lookups
 * while the rest of the config is checked find what a scan would. */
static void index_devices(struct cfgw_ctx *c, struct config *cfg)
{
    if (cfg->n_devices > UINT32_MAX / 2 ||
        !strix_reserve(&cfg->device_ix, cfg->n_devices, 0, device_key, cfg)) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < cfg->n_devices; i++) {
        const char *id = cfg->devices[i].id;
        if (id && strix_find(&cfg->device_ix, id, device_key, cfg) < 0)
            strix_put(&cfg->device_ix, id, (uint32_t)i);
    }
}

/* ---- public API ---------------------------------------------------------- */

static void config_release(struct config *cfg);

static void err_line(struct cfg_errors *errs, const char *name, int line, int col, const char *msg)
{
    struct cfgw_ctx c = {.file = name};
    cfgw_error(&c, line, col, "%s", msg);
    cfgw_take_errors(&c, errs);
    cfgw_ctx_free(&c);
}

/* "cannot read the config" for the whole file, e being the errno. */
static wb_status read_failed(struct cfg_errors *errs, const char *name, int e)
{
    char msg[300];
    snprintf(msg, sizeof(msg), "cannot read the config: %s",
             e == EFBIG ? "file is larger than 4 MiB" : strerror(e));
    err_line(errs, name, 1, 1, msg);
    return e == ENOENT ? WB_ERR_NOT_FOUND : WB_ERR_IO;
}

static void device_entry(void *arg, const struct ydoc_node *entry, size_t index)
{
    cfgd_device(arg, entry, index);
}

/* ---- checks of the modules above (cfg_add_check) ------------------------- */

static cfg_check_fn checks[CFG_CHECKS_MAX];
static size_t n_checks;

/* What a check reports into: the loader's error context. */
struct cfg_check {
    struct cfgw_ctx *c;
};

bool cfg_add_check(cfg_check_fn fn)
{
    for (size_t i = 0; i < n_checks; i++)
        if (checks[i] == fn)
            return true;
    if (n_checks == CFG_CHECKS_MAX)
        return false;
    checks[n_checks++] = fn;
    return true;
}

void cfg_check_error(struct cfg_check *chk, int line, int column, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cfgw_error(chk->c, line, column, "%s", msg);
}

static void run_checks(struct cfgw_ctx *c, const struct config *cfg)
{
    struct cfg_check chk = {.c = c};
    for (size_t i = 0; i < n_checks; i++)
        checks[i](cfg, &chk);
}

/* The loader behind cfg_parse() and cfg_load(). The devices: list is
 * streamed: each entry becomes a struct cfg_device while libyaml is still
 * reading, and only the rest of the file (small) is kept as a tree. Errors
 * are therefore found out of file order (devices first, then the top level,
 * then scenarios); cfgw_take_errors() hands them out sorted by position, as
 * before. On a syntax or read error only that one error is reported: what
 * the entries parsed before it produced is dropped. */
static wb_status load(const char *name, const struct ydoc_input *in, struct config **out,
                      struct cfg_errors *errs)
{
    struct cfgw_ctx c = {.file = name};
    struct ydoc_node *root = NULL;
    struct top_tmp t;
    struct cfgd_loader dl;
    struct config *cfg = NULL;
    char msg[256];
    int line, col;
    wb_status st = WB_ERR_CONFIG;

    *out = NULL;
    memset(&t, 0, sizeof(t));
    cfgd_begin(&dl, &c, &t.cfg);
    struct ydoc_stream devices = {.key = "devices", .item = device_entry, .arg = &dl};
    int rc = ydoc_parse_input(in, &devices, &root, msg, sizeof(msg), &line, &col);
    if (rc < 0) {
        int e = errno; /* freeing below may change it */
        cfgd_end(&dl);
        cfgd_free(&t.cfg);
        cfgw_ctx_free(&c);
        if (rc == YDOC_EREAD)
            return read_failed(errs, name, e);
        err_line(errs, name, line, col, msg);
        return WB_ERR_CONFIG;
    }
    cfgw_defaults(&c, top_fields, &t); /* leaves t.cfg.devices alone */
    if (!root || ydoc_is_null(root) || root->kind == YDOC_MAP)
        cfgw_map(&c, top_fields, root, &t, CFGW_TOP);
    else
        cfgw_err_node(&c, root, "the config must be a map of sections, got %s",
                      ydoc_describe(root, msg, sizeof(msg)));
    t.cfg.path = cfgw_strdup(&c, name);
    {
        struct cfgd_history_tmp ht = {
            .h = t.cfg.persistence.history, .fields = t.hist_fields, .exclude = t.hist_exclude};
        cfgd_history_lists(&c, &ht, "persistence.history");
        t.cfg.persistence.history = ht.h;
    }
    cfgd_devices(&dl, t.devices);
    cfgd_end(&dl);
    index_devices(&c, &t.cfg);
    cfgs_scenarios(&c, t.scenarios, &t.cfg);
    check_top(&c, root, &t.cfg);
    cfgh_finish(&c, root, &t.cfg);
    check_tls(&c, root, &t.cfg.mqtt);
    load_secrets(&c, root, &t.cfg);
    if (!c.oom)
        run_checks(&c, &t.cfg);

    cfg = malloc(sizeof(*cfg));
    if (!cfg)
        c.oom = true;
    if (c.oom) {
        st = WB_ERR_NOMEM;
        goto fail;
    }
    if (c.n > 0)
        goto fail;
    *cfg = t.cfg;
    *out = cfg;
    ydoc_free(root);
    cfgw_ctx_free(&c);
    return WB_OK;
fail:
    cfgw_take_errors(&c, errs);
    if (st == WB_ERR_NOMEM)
        err_line(errs, name, 1, 1, "out of memory while loading the config");
    free(cfg);
    config_release(&t.cfg); /* a complete, if invalid, config */
    ydoc_free(root);
    cfgw_ctx_free(&c);
    return st;
}

wb_status cfg_parse(const char *name, const char *text, size_t len, struct config **out,
                    struct cfg_errors *errs)
{
    struct ydoc_input in = {.text = text, .len = len};
    return load(name, &in, out, errs);
}

/* The file is handed to libyaml in small chunks, never read whole; the
 * size limit is checked up front for a regular file and enforced while
 * reading for anything else (a pipe, a file that grows). */
wb_status cfg_load(const char *path, struct config **out, struct cfg_errors *errs)
{
    struct stat sb;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return read_failed(errs, path, errno);
    int e = 0;
    if (fstat(fd, &sb) < 0)
        e = errno;
    else if (S_ISREG(sb.st_mode) && (uintmax_t)sb.st_size > CFG_MAX_FILE)
        e = EFBIG;
    if (e) {
        close(fd);
        return read_failed(errs, path, e);
    }
    struct ydoc_input in = {.use_fd = true, .fd = fd, .max_bytes = CFG_MAX_FILE};
    wb_status st = load(path, &in, out, errs);
    close(fd);
    return st;
}

/* Frees everything cfg owns, not cfg itself. */
static void config_release(struct config *cfg)
{
    free(cfg->path);
    free(cfg->mqtt.host);
    free(cfg->mqtt.client_id);
    free(cfg->mqtt.username);
    free(cfg->mqtt.password_file);
    if (cfg->mqtt.password) {
        /* Wipe the secret so it does not linger in freed heap memory. */
        explicit_bzero(cfg->mqtt.password, strlen(cfg->mqtt.password));
        free(cfg->mqtt.password);
    }
    free(cfg->mqtt.ca_file);
    free(cfg->mqtt.cert_file);
    free(cfg->mqtt.key_file);
    free(cfg->persistence.db_path);
    free(cfg->persistence.pg_conninfo);
    free(cfg->persistence.pg_password_file);
    free(cfg->persistence.pg_site);
    cfgd_history_free(&cfg->persistence.history);
    if (cfg->persistence.pg_password) {
        explicit_bzero(cfg->persistence.pg_password, strlen(cfg->persistence.pg_password));
        free(cfg->persistence.pg_password);
    }
    free(cfg->http.listen);
    free(cfg->http.token_file);
    if (cfg->http.token) {
        explicit_bzero(cfg->http.token, strlen(cfg->http.token));
        free(cfg->http.token);
    }
    free(cfg->bridge_device_id);
    cfgh_release(&cfg->homeassistant);
    strix_free(&cfg->device_ix);
    cfgs_free(cfg);
    cfgd_free(cfg);
}

void cfg_history_policy(const struct config *cfg, const struct cfg_device *dev,
                        struct cfg_history *out)
{
    *out = cfg->persistence.history;
    const struct cfg_history *d = dev ? dev->history : NULL;
    if (d && d->has_mode)
        out->mode = d->mode;
    if (d && d->has_interval)
        out->interval_ms = d->interval_ms;
    if (d && d->has_fields) {
        out->fields = d->fields;
        out->n_fields = d->n_fields;
    }
    if (d && d->has_exclude) {
        out->exclude = d->exclude;
        out->n_exclude = d->n_exclude;
    }
    if (!cfg->persistence.history_enabled)
        out->mode = CFG_HIST_OFF;
}

bool cfg_history_records(const struct cfg_history *p, const char *name)
{
    bool in = !p->fields;
    for (size_t i = 0; !in && i < p->n_fields; i++)
        in = strcmp(p->fields[i], name) == 0;
    for (size_t i = 0; in && i < p->n_exclude; i++)
        in = strcmp(p->exclude[i], name) != 0;
    return in;
}

void cfg_free(struct config *cfg)
{
    if (!cfg)
        return;
    config_release(cfg);
    free(cfg);
}

void cfg_errors_free(struct cfg_errors *errs)
{
    if (!errs)
        return;
    for (size_t i = 0; i < errs->n; i++)
        free(errs->lines[i]);
    free(errs->lines);
    errs->lines = NULL;
    errs->n = 0;
}

long cfg_device_index(const struct config *cfg, const char *id)
{
    if (!cfg || !id)
        return -1;
    return strix_find(&cfg->device_ix, id, device_key, cfg);
}

const char *cfg_type_name(enum cfg_value_type t)
{
    switch (t) {
    case CFG_T_BOOL:
        return "bool";
    case CFG_T_INT:
        return "int";
    case CFG_T_FLOAT:
        return "float";
    case CFG_T_STRING:
        return "string";
    case CFG_T_JSON:
        return "json";
    case CFG_T_ENUM:
        return "enum";
    }
    return "?";
}

const struct cfg_device *cfg_find_device(const struct config *cfg, const char *id)
{
    long i = cfg_device_index(cfg, id);
    return i < 0 ? NULL : &cfg->devices[i];
}

const struct cfg_action *cfg_find_action(const struct cfg_device *dev, const char *name)
{
    for (size_t i = 0; dev && name && i < dev->n_actions; i++)
        if (strcmp(dev->actions[i].name, name) == 0)
            return &dev->actions[i];
    return NULL;
}

const struct cfg_scenario *cfg_find_scenario(const struct config *cfg, const char *id)
{
    for (size_t i = 0; cfg && id && i < cfg->n_scenarios; i++)
        if (strcmp(cfg->scenarios[i].id, id) == 0)
            return &cfg->scenarios[i];
    return NULL;
}

const struct cfg_field_spec *cfg_field_spec(const struct cfg_device *dev, const char *field)
{
    for (size_t i = 0; dev && field && i < dev->n_state; i++) {
        const struct cfg_state_binding *b = &dev->state[i];
        if (b->field && strcmp(b->field, field) == 0)
            return b->spec;
        for (size_t k = 0; k < b->n_fields; k++)
            if (strcmp(b->fields[k].field, field) == 0)
                return b->fields[k].spec;
    }
    return NULL;
}

/* ---- when: conditions ---------------------------------------------------- */

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* A bare word: no white space, quotes or operator characters. */
static bool bare_word(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strchr(" \t'\"=!<>", s[i]))
            return false;
    return true;
}

static json_object *cond_value(const char *v, char *err, size_t errlen)
{
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 0) {
        snprintf(err, errlen, "missing value after the operator");
        return NULL;
    }
    char *text = strndup(v, n);
    json_object *out = NULL;
    long long ll;
    double d;
    bool b;
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (text[0] == '\'' || text[0] == '"') {
        char *close = strchr(text + 1, text[0]);
        if (!close)
            snprintf(err, errlen, "unterminated quoted value");
        else if (close[1])
            snprintf(err, errlen, "unexpected text after the quoted value: '%s'", close + 1);
        else
            out = json_object_new_string_len(text + 1, (int)(close - text - 1));
    } else if (!bare_word(text, n)) {
        snprintf(err, errlen,
                 "value '%s' must be a number, true/false, a quoted string or one word", text);
    } else if (cfgw_parse_ll(text, &ll)) {
        out = json_object_new_int64(ll);
    } else if (strpbrk(text, "0123456789") && !strpbrk(text, "nNiIxX") &&
               cfgw_parse_double(text, &d)) {
        out = json_object_new_double(d);
    } else if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0) {
        cfgw_parse_bool(text, &b);
        out = json_object_new_boolean(b);
    } else {
        out = json_object_new_string(text);
    }
    free(text);
    return out;
}

struct cfg_condition *cfg_condition_parse(const char *text, char *err, size_t errlen)
{
    struct cfg_condition *c = NULL;
    const char *eq = strstr(text, "=="), *ne = strstr(text, "!=");
    const char *op = eq && (!ne || eq < ne) ? eq : ne;

    if (!op) {
        snprintf(err, errlen, "expected FIELD == VALUE or FIELD != VALUE");
        return NULL;
    }
    const char *f = skip_ws(text), *fe = op;
    while (fe > f && (fe[-1] == ' ' || fe[-1] == '\t'))
        fe--;
    if (fe == f) {
        snprintf(err, errlen, "missing field name before the operator");
        return NULL;
    }
    if (!bare_word(f, (size_t)(fe - f))) {
        snprintf(err, errlen, "field name '%.*s' must be one word", (int)(fe - f), f);
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (!c || !(c->field = strndup(f, (size_t)(fe - f)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    c->op = op == eq ? CFG_COND_EQ : CFG_COND_NE;
    if (!(c->value = cond_value(skip_ws(op + 2), err, errlen)))
        goto fail;
    return c;
fail:
    cfg_condition_free(c);
    return NULL;
}

void cfg_condition_free(struct cfg_condition *c)
{
    if (!c)
        return;
    free(c->field);
    json_object_put(c->value);
    free(c);
}
