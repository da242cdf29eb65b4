/*
 * config.h - the parsed configuration of wb-mqtt-bridge (CONTRACT.md §3).
 *
 * cfg_load() parses a YAML file with libyaml into a fresh struct config,
 * validates all of it, and reports every error as "FILE:LINE:COLUMN: message"
 * (all errors, not only the first). The caller swaps the new config in only
 * when it is valid (also on SIGHUP). A struct config is immutable once loaded
 * and owns every string and json_object in it, and an index of its devices
 * by id (cfg_device_index()); cfg_free() releases it all.
 *
 * Secrets: mqtt.password and http.token hold the loaded secrets; they are
 * never logged and never served.
 */
#ifndef WBMB_CONFIG_H
#define WBMB_CONFIG_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "wbmb/log.h"
#include "wbmb/status.h"
#include "wbmb/strix.h"

#define CFG_DEFAULT_PATH "/etc/wb-mqtt-bridge.yaml"

enum cfg_value_type {
    CFG_T_BOOL,
    CFG_T_INT,
    CFG_T_FLOAT,
    CFG_T_STRING,
    CFG_T_JSON, /* state bindings only: a JSON object merged into the state */
    CFG_T_ENUM, /* action params only */
};

/* Where an item was written in the YAML file (1-based). */
struct cfg_mark {
    int line;
    int column;
};

/* A text in the languages Wiren Board's UI shows: title: {en: ..., ru: ...}.
 * NULL = not given. */
struct cfg_i18n {
    char *en;
    char *ru;
};

/* One entry of wb.enum: a value the control can take and its titles. */
struct cfg_wb_enum {
    char *value; /* the value as the control's payload ("0", "hdmi1") */
    struct cfg_i18n title;
};

/* wb: of a state field: the Wiren Board control meta (conventions v1.4).
 * Everything is optional; what is not given comes from the binding (bool ->
 * switch, int/float -> value, string/object -> text). */
struct cfg_wb_meta {
    char *type;  /* NULL = from the binding; else one of the convention's types */
    char *units; /* NULL = none */
    bool has_min, has_max, has_precision, has_order;
    double min, max;
    double precision; /* rounding step, > 0 (0.1 = one decimal) */
    int order;        /* >= 0 */
    int readonly;     /* -1 = default (read-only unless actions make it writable), 0, 1 */
    bool hidden;
    struct cfg_i18n title;
    struct cfg_wb_enum *enums; /* NULL when none */
    size_t n_enums;
    struct cfg_mark mark;
};

/* homeassistant: of a state field or an action: how Home Assistant shows
 * its entity (src/mirror/ha*.c). Every member is optional, NULL = not
 * given. */
struct cfg_ha_meta {
    char *device_class;    /* [a-z_]+, HA's device class of the entity's platform */
    char *state_class;     /* fields only: measurement | total | total_increasing | none
                            * (none: omitted; NULL: "measurement" for numbers) */
    char *icon;            /* "mdi:thermometer" (PREFIX:NAME) */
    char *entity_category; /* config | diagnostic */
    struct cfg_mark mark;
};

/* map: of a field: a received value (its text: a string as is, a number or
 * boolean as JSON writes it) -> the value stored. */
struct cfg_map_entry {
    char *from;
    json_object *to; /* owned; a scalar */
};

/* What the config says about one state field beyond where it comes from:
 * how its received value is converted, how it is shown and switched. */
struct cfg_field_spec {
    struct cfg_map_entry *map; /* NULL when none; applied before scale */
    size_t n_map;
    bool has_scale;
    double scale;           /* numbers: the stored value is received * scale */
    struct cfg_wb_meta *wb; /* NULL = defaults from the binding */
    /* switch: {on: ACTION, off: ACTION}: the actions that turn the field on
     * and off (a writable switch). NULL = derived from the actions whose
     * set writes true / false to the field. */
    char *on_action, *off_action;
    struct cfg_ha_meta *ha; /* homeassistant: of the field; NULL = none */
};

/* fields: {state_field: json.key.path} of a JSON state binding, or in the
 * long form {state_field: {path: json.key.path, map, scale, wb, switch}}. */
struct cfg_field_map {
    char *field;                 /* state field name */
    char *path;                  /* dotted path inside the message ("a.b.c") */
    struct cfg_field_spec *spec; /* NULL when the entry gives none of its keys */
};

/* One entry of devices[].state: a topic whose messages change the state. */
struct cfg_state_binding {
    char *topic;              /* may hold MQTT wildcards + and # */
    enum cfg_value_type type; /* BOOL, INT, FLOAT, STRING or JSON */
    char *field;              /* plain types: the state field set (required) */
    /* Plain types: map, scale, wb, switch of field; NULL when none is
     * given (most bindings: 8 bytes, not a whole spec, per binding). */
    struct cfg_field_spec *spec;
    struct cfg_field_map *fields; /* JSON: optional mapping; NULL = merge the whole object */
    size_t n_fields;
    struct cfg_mark mark;
};

struct cfg_availability {
    char *topic;   /* NULL when only timeout_s is used */
    char *online;  /* payload meaning online, default "online" */
    char *offline; /* payload meaning offline, default "offline" */
    /* A payload that is a JSON object is read through this key (default
     * "state": Zigbee2MQTT 2.x sends {"state":"online"}). */
    char *json_field;
    unsigned timeout_s; /* > 0: offline when no state message for that long */
};

/* One entry of actions.<name>.params. */
struct cfg_param {
    char *name;
    enum cfg_value_type type; /* INT, FLOAT, BOOL, STRING or ENUM */
    bool has_min, has_max;
    double min, max; /* numbers: value bounds; strings: length bounds */
    bool required;
    json_object *default_value; /* NULL when none */
    char **enum_values;         /* ENUM: allowed values */
    size_t n_enum_values;
};

struct cfg_action {
    char *name;
    char *topic;
    char *payload; /* template: "{param}" replaced by the param's value; default "1" */
    struct cfg_param *params;
    size_t n_params;
    json_object
        *set; /* object field -> value; a string value may be a "{param}" template; NULL = none */
    struct cfg_ha_meta *ha; /* homeassistant: of the action; NULL = none */
    struct cfg_mark mark;
};

struct cfg_device {
    char *id;       /* [a-z0-9_]+ */
    char *name;     /* default: the id */
    char *type;     /* free label, default "" */
    bool wb_mirror; /* default true */
    struct cfg_state_binding *state;
    size_t n_state;
    char **transient; /* field names never persisted */
    size_t n_transient;
    struct cfg_availability *availability; /* NULL when not configured */
    struct cfg_history *history;           /* history: of the device; NULL = the default */
    struct cfg_action *actions;
    size_t n_actions;
    struct cfg_mark mark;
};

enum cfg_cond_op { CFG_COND_EQ, CFG_COND_NE };

/* A step's "when": FIELD == VALUE or FIELD != VALUE. */
struct cfg_condition {
    char *field;
    enum cfg_cond_op op;
    json_object *value; /* number, boolean or string */
};

struct cfg_step {
    char *device;
    char *action;
    json_object *params;        /* object, NULL when none */
    struct cfg_condition *when; /* NULL when none */
    unsigned delay_after_ms;
    struct cfg_mark mark;
};

struct cfg_scenario {
    char *id;
    char *name;
    char **devices;
    size_t n_devices;
    struct cfg_step *startup;
    size_t n_startup;
    struct cfg_step *shutdown;
    size_t n_shutdown;
    struct cfg_mark mark;
};

struct cfg_mqtt {
    char *host;          /* default "127.0.0.1" */
    int port;            /* default 1883, 1..65535 */
    char *client_id;     /* default "wb-mqtt-bridge" */
    char *username;      /* NULL when none */
    char *password_file; /* NULL when none */
    char *password;      /* secret: from password_file or WB_MQTT_BRIDGE_PASSWORD; NULL when none */
    unsigned keepalive_s;                 /* default 30 */
    int protocol;                         /* CFG_MQTT_5 (default) or CFG_MQTT_311 */
    unsigned flap_disconnects;            /* more than this many losses ... default 3 */
    unsigned flap_window_s;               /* ... within this many seconds: flapping; 60 */
    bool tls;                             /* tls: given */
    char *ca_file, *cert_file, *key_file; /* NULL when not given */
    bool tls_verify_hostname;             /* tls.verify_hostname, default true */
};

/* mqtt.protocol: the MQTT version numbers of the CONNECT packet. */
#define CFG_MQTT_311 4
#define CFG_MQTT_5 5

/* history.mode: which transitions become device_state_snapshots rows. */
enum cfg_history_mode {
    CFG_HIST_ALL,      /* every transition is a row (the audit trail) */
    CFG_HIST_INTERVAL, /* at most one row per device per interval_ms: the latest state,
                          with min/max/mean/n of the numeric fields */
    CFG_HIST_OFF,      /* no rows; the state is still kept */
};

/* A history policy: persistence.history (the default of every device) or
 * devices[].history (each key given there overrides the default). */
struct cfg_history {
    int mode;             /* enum cfg_history_mode, default CFG_HIST_ALL */
    unsigned interval_ms; /* interval mode: default 60000, 1000..86400000 */
    char **fields;        /* only these fields are recorded; NULL = every persisted one */
    size_t n_fields;
    char **exclude; /* these fields are never recorded */
    size_t n_exclude;
    /* Which keys the block gave (a device's block overrides only those). */
    bool has_mode, has_interval, has_fields, has_exclude;
};

/* persistence.backend: which StateStore backend keeps the state. */
enum cfg_store_backend { CFG_STORE_SQLITE, CFG_STORE_MEMORY, CFG_STORE_POSTGRESQL };

struct cfg_persistence {
    int backend;                   /* enum cfg_store_backend, default CFG_STORE_SQLITE */
    char *db_path;                 /* default "data/state_store.db" */
    unsigned commit_interval_ms;   /* default 100, 0..60000 */
    unsigned sync_interval_ms;     /* default 1000, 0..60000 (power-loss bound) */
    bool history_enabled;          /* default true; false = history.mode off */
    struct cfg_history history;    /* the default policy (mode, interval_ms, fields, exclude) */
    unsigned history_max_rows;     /* per device, default 10000 */
    unsigned history_max_age_days; /* default 30 */
    /* Appended rows (history, logs) queued while the database fails; past
     * it the oldest history snapshots are dropped, counted and logged
     * (default 100000, 0 = unbounded). */
    unsigned max_queued_rows;
    /* persistence.postgresql: (backend postgresql only). */
    char *pg_conninfo;             /* libpq conninfo or URI; required */
    char *pg_password_file;        /* NULL when none (libpq's PGPASSWORD / .pgpass apply) */
    char *pg_password;             /* secret loaded from pg_password_file; NULL when none */
    char *pg_site;                 /* this bridge's rows; required, [A-Za-z0-9_.-]{1,64} */
    unsigned pg_connect_timeout_s; /* start-up: retry this long, then exit 1 (default 60) */
};

struct cfg_http {
    char *listen;     /* "host:port", default "127.0.0.1:8080"; "" disables */
    char *token_file; /* NULL when none */
    char *token;      /* secret loaded from token_file; NULL when none */
};

/* homeassistant: the Home Assistant discovery sink (src/mirror/ha*.c). */
struct cfg_homeassistant {
    bool enabled;                /* default false */
    char *discovery_prefix;      /* default "homeassistant"; one or more topic levels */
    char *node_id;               /* [A-Za-z0-9_-]{1,64}; default bridge.device_id with other
                                  * characters as '_' */
    char *base_topic;            /* state, command and availability topics; default node_id */
    char *status_topic;          /* Home Assistant's birth and will; default
                                  * "<discovery_prefix>/status" */
    unsigned republish_delay_ms; /* after its "online"; default 1000, 0..60000 */
    /* A device's state topic is published at most once per interval, the
     * latest state always going out (default 250, 0 = every change). */
    unsigned state_interval_ms;
    struct cfg_mark mark; /* of the homeassistant: key; 0:0 when absent */
};

struct config {
    char *path; /* the file it was loaded from */
    struct cfg_mqtt mqtt;
    struct cfg_persistence persistence;
    struct cfg_http http;
    enum log_level log_level; /* default info */
    char *bridge_device_id;   /* default "wb-mqtt-bridge" */
    /* A mirrored control's value is published at most once per interval;
     * the latest value always goes out (default 250, 0 = every change). */
    unsigned mirror_min_interval_ms;
    /* bridge.wb_legacy_meta: also publish meta/type, meta/readonly, ...
     * beside each control's JSON meta (default true). */
    bool wb_legacy_meta;
    struct cfg_homeassistant homeassistant;
    struct cfg_device *devices;
    size_t n_devices;
    struct cfg_scenario *scenarios;
    size_t n_scenarios;
    /* Private to config.c: device id -> position in devices, built once
     * when the devices are parsed; read through cfg_device_index(). */
    struct strix device_ix;
};

/* Collected error lines, each "FILE:LINE:COLUMN: message". */
struct cfg_errors {
    char **lines;
    size_t n;
};

/* Loads and validates path. On success returns WB_OK and *out (free with
 * cfg_free). On failure returns WB_ERR_CONFIG (or WB_ERR_IO/NOMEM), *out is
 * NULL and errs holds every error found (free with cfg_errors_free). */
wb_status cfg_load(const char *path, struct config **out, struct cfg_errors *errs);

/* The same for YAML text in memory; name is used as FILE in error lines. */
wb_status cfg_parse(const char *name, const char *text, size_t len, struct config **out,
                    struct cfg_errors *errs);

/* cfg_free(NULL) is a no-op. */
void cfg_free(struct config *cfg);
void cfg_errors_free(struct cfg_errors *errs);

/* Checks that modules above the config run on every config that loads: a
 * module that owns a convention validates what only it knows (the Wiren
 * Board mirror refuses state topics inside its own /devices/<id>/). A check
 * runs after the config's own validation, on the complete config with its
 * device index, and reports through cfg_check_error(); its errors are sorted
 * in among the others, so the caller sees one list in file order. */
struct cfg_check;
typedef void (*cfg_check_fn)(const struct config *cfg, struct cfg_check *chk);

/* One "FILE:LINE:COLUMN: message" error of a check (line and column as in
 * a struct cfg_mark). */
void cfg_check_error(struct cfg_check *chk, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Adds fn to the checks that cfg_load() and cfg_parse() run (a repeated fn
 * is added once). Call at start-up, before any thread loads a config.
 * Returns false when CFG_CHECKS_MAX checks are registered already. */
#define CFG_CHECKS_MAX 8
bool cfg_add_check(cfg_check_fn fn);

/* Parses a "when" expression (FIELD == VALUE, FIELD != VALUE). Returns a new
 * condition or NULL with a message in err. Free with cfg_condition_free. */
struct cfg_condition *cfg_condition_parse(const char *text, char *err, size_t errlen);
void cfg_condition_free(struct cfg_condition *c);

/* The position of device id in cfg->devices, -1 when there is none (or cfg
 * or id is NULL). O(1): the config's own index, so a module that keeps its
 * devices in the order of cfg->devices (the device manager) needs no index
 * of its own. */
long cfg_device_index(const struct config *cfg, const char *id);

/* The YAML name of a value type: "bool", "int", "float", "string", "json",
 * "enum". */
const char *cfg_type_name(enum cfg_value_type t);

/* The history policy in force for dev (NULL: the default): the device's
 * history: keys over persistence.history; mode CFG_HIST_OFF when
 * persistence.history.enabled is false. The lists in *out are borrowed
 * from cfg. */
void cfg_history_policy(const struct config *cfg, const struct cfg_device *dev,
                        struct cfg_history *out);
/* true when the policy p records field name (fields, then exclude). */
bool cfg_history_records(const struct cfg_history *p, const char *name);

/* Lookups; NULL when absent. cfg_find_device() goes through the index. */
const struct cfg_device *cfg_find_device(const struct config *cfg, const char *id);
const struct cfg_action *cfg_find_action(const struct cfg_device *dev, const char *name);
const struct cfg_scenario *cfg_find_scenario(const struct config *cfg, const char *id);

/* The spec of state field `field` of dev: a plain binding's or a JSON
 * binding's fields: entry. NULL when no binding names the field (a field of
 * a merged object) or the binding gives no spec keys. O(bindings). */
const struct cfg_field_spec *cfg_field_spec(const struct cfg_device *dev, const char *field);

#endif
