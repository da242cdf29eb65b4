/*
 * test_config.c - unit tests of the config loader (src/config/).
 *
 * Loads config/example.yaml and the deliberately broken fixtures of
 * tests/data/config/, asserting exact "FILE:LINE:COLUMN: message" lines for
 * a few and that every error of a file is reported. Every error path is run
 * under ASan, so a leak on any of them fails the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "wbmb/config.h"
#include "wbmb/state_store.h"
#include "wbmb/mirror.h"

static char *data_path(const char *rel)
{
    const char *dir = getenv("WBMB_TEST_DATA");
    char *p = NULL;
    assert_non_null(dir);
    assert_true(asprintf(&p, "%s/%s", dir, rel) > 0);
    return p;
}

/* Loads a fixture of tests/data/config; errors go to errs. */
static wb_status load_fixture(const char *name, struct config **cfg, struct cfg_errors *errs)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "config/%s", name);
    char *p = data_path(rel);
    wb_status st = cfg_load(p, cfg, errs);
    free(p);
    return st;
}

static wb_status parse_text(const char *text, struct config **cfg, struct cfg_errors *errs)
{
    return cfg_parse("t.yaml", text, strlen(text), cfg, errs);
}

/* true when some error line ends with "LINE:COL: msg" after the file name. */
static bool has_error(const struct cfg_errors *e, const char *pos_and_msg)
{
    for (size_t i = 0; i < e->n; i++) {
        const char *s = strstr(e->lines[i], ".yaml:");
        if (s && strcmp(s + 6, pos_and_msg) == 0)
            return true;
    }
    return false;
}

static bool has_substr(const struct cfg_errors *e, const char *sub)
{
    for (size_t i = 0; i < e->n; i++)
        if (strstr(e->lines[i], sub))
            return true;
    return false;
}

static void dump(const struct cfg_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        print_message("  %s\n", e->lines[i]);
}

#define EXPECT(errs, s)                                                                            \
    do {                                                                                           \
        if (!has_error(&(errs), s)) {                                                              \
            dump(&(errs));                                                                         \
            fail_msg("missing error: %s", s);                                                      \
        }                                                                                          \
    } while (0)

/* ---- valid configs ------------------------------------------------------- */

static void test_example(void **state)
{
    (void)state;
    const char *dir = getenv("WBMB_TEST_DATA");
    assert_non_null(dir);
    char *p = NULL;
    assert_true(asprintf(&p, "%s/../../config/example.yaml", dir) > 0);
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    unsetenv("WB_MQTT_BRIDGE_PASSWORD");
    wb_status st = cfg_load(p, &cfg, &errs);
    dump(&errs);
    free(p);
    assert_int_equal(st, WB_OK);
    assert_int_equal(errs.n, 0);
    assert_non_null(cfg);

    assert_string_equal(cfg->bridge_device_id, "wb-mqtt-bridge");
    assert_string_equal(cfg->mqtt.host, "127.0.0.1");
    assert_int_equal(cfg->mqtt.port, 1883);
    assert_null(cfg->mqtt.password);
    assert_false(cfg->mqtt.tls);
    assert_string_equal(cfg->persistence.db_path, "data/state_store.db");
    assert_int_equal(cfg->persistence.commit_interval_ms, 100);
    assert_true(cfg->persistence.history_enabled);
    assert_string_equal(cfg->http.listen, "127.0.0.1:8080");
    assert_int_equal(cfg->log_level, LOG_LVL_INFO);
    assert_int_equal(cfg->n_devices, 5);
    assert_int_equal(cfg->n_scenarios, 2);

    const struct cfg_device *tv = cfg_find_device(cfg, "living_room_tv");
    assert_non_null(tv);
    assert_string_equal(tv->name, "Living room TV");
    assert_true(tv->wb_mirror);
    assert_int_equal(tv->n_state, 1);
    assert_int_equal(tv->state[0].type, CFG_T_BOOL);
    assert_string_equal(tv->state[0].field, "power");
    const struct cfg_action *on = cfg_find_action(tv, "power_on");
    assert_non_null(on);
    assert_string_equal(on->topic, "/devices/wb-mr6c_1/controls/K1/on");
    assert_true(json_object_get_boolean(json_object_object_get(on->set, "power")));

    const struct cfg_device *dim = cfg_find_device(cfg, "hall_dimmer");
    assert_non_null(dim);
    assert_string_equal(dim->state[0].topic, "/devices/wb-mdm3_1/controls/Channel 1");
    const struct cfg_action *lvl = cfg_find_action(dim, "set_level");
    assert_non_null(lvl);
    assert_int_equal(lvl->n_params, 1);
    assert_int_equal(lvl->params[0].type, CFG_T_INT);
    assert_true(lvl->params[0].has_min && lvl->params[0].has_max);
    assert_true(lvl->params[0].min == 0 && lvl->params[0].max == 100);
    assert_true(lvl->params[0].required);
    assert_string_equal(json_object_get_string(json_object_object_get(lvl->set, "level")),
                        "{level}");

    const struct cfg_device *plug = cfg_find_device(cfg, "kitchen_plug");
    assert_non_null(plug);
    assert_int_equal(plug->state[0].type, CFG_T_JSON);
    assert_null(plug->state[0].field);
    assert_int_equal(plug->state[0].n_fields, 4);
    assert_string_equal(plug->state[0].fields[1].field, "power_w");
    assert_string_equal(plug->state[0].fields[1].path, "power");
    assert_int_equal(plug->n_transient, 2);
    assert_non_null(plug->availability);
    assert_string_equal(plug->availability->topic, "zigbee2mqtt/kitchen_plug/availability");
    assert_string_equal(plug->availability->json_field, "state");
    /* Issue 17: the Z2M 2.x plug's mapped switch, its scaled energy. */
    const struct cfg_field_spec *pw = cfg_field_spec(plug, "power");
    assert_non_null(pw);
    assert_int_equal(pw->n_map, 2);
    assert_string_equal(pw->on_action, "on");
    assert_string_equal(pw->off_action, "off");
    assert_string_equal(pw->wb->title.ru, "Питание");
    const struct cfg_field_spec *en = cfg_field_spec(plug, "energy_kwh");
    assert_true(en->has_scale && en->scale == 0.001);
    assert_string_equal(en->wb->units, "kWh");
    assert_true(cfg->wb_legacy_meta);
    /* Issue 18: Home Assistant discovery, on, with the defaults. */
    assert_true(cfg->homeassistant.enabled);
    assert_string_equal(cfg->homeassistant.discovery_prefix, "homeassistant");
    assert_string_equal(cfg->homeassistant.node_id, "wb-mqtt-bridge");
    assert_string_equal(cfg->homeassistant.base_topic, "wb-mqtt-bridge");
    assert_string_equal(cfg->homeassistant.status_topic, "homeassistant/status");
    assert_int_equal(cfg->homeassistant.republish_delay_ms, 1000);
    assert_int_equal(cfg->homeassistant.state_interval_ms, 250);
    assert_string_equal(en->ha->device_class, "energy");
    assert_string_equal(en->ha->state_class, "total_increasing");
    const struct cfg_action *pon = cfg_find_action(plug, "on");
    assert_non_null(pon);
    assert_string_equal(pon->payload, "{\"state\": \"ON\"}");
    assert_true(json_object_get_boolean(json_object_object_get(pon->set, "power")));

    const struct cfg_device *sensor = cfg_find_device(cfg, "bedroom_sensor");
    assert_non_null(sensor);
    assert_int_equal(sensor->n_actions, 0);
    assert_null(sensor->availability->topic);
    assert_int_equal(sensor->availability->timeout_s, 300);
    assert_string_equal(cfg_field_spec(sensor, "temperature")->ha->device_class, "temperature");
    assert_string_equal(cfg_field_spec(sensor, "humidity")->ha->device_class, "humidity");
    assert_string_equal(sensor->availability->online, "online");

    const struct cfg_device *amp = cfg_find_device(cfg, "amplifier");
    const struct cfg_action *inp = cfg_find_action(amp, "set_input");
    assert_non_null(inp);
    assert_int_equal(inp->params[0].type, CFG_T_ENUM);
    assert_int_equal(inp->params[0].n_enum_values, 3);
    assert_string_equal(inp->params[0].enum_values[2], "optical");

    const struct cfg_scenario *movie = cfg_find_scenario(cfg, "movie");
    assert_non_null(movie);
    assert_int_equal(movie->n_devices, 3);
    assert_int_equal(movie->n_startup, 4);
    assert_int_equal(movie->n_shutdown, 2);
    assert_non_null(movie->startup[0].when);
    assert_int_equal(movie->startup[0].when->op, CFG_COND_NE);
    assert_int_equal(movie->startup[1].delay_after_ms, 200);
    assert_string_equal(
        json_object_get_string(json_object_object_get(movie->startup[2].params, "input")), "hdmi1");
    assert_int_equal(json_object_get_int(json_object_object_get(movie->startup[3].params, "level")),
                     10);
    const struct cfg_scenario *music = cfg_find_scenario(cfg, "music");
    assert_non_null(music);
    assert_string_equal(music->devices[0], "amplifier");
    assert_null(cfg_find_scenario(cfg, "none"));
    assert_null(cfg_find_device(cfg, "ghost"));
    cfg_free(cfg);
    cfg_free(NULL);
}

static void check_defaults(const struct config *cfg)
{
    assert_string_equal(cfg->mqtt.host, "127.0.0.1");
    assert_int_equal(cfg->mqtt.port, 1883);
    assert_string_equal(cfg->mqtt.client_id, "wb-mqtt-bridge");
    assert_null(cfg->mqtt.username);
    assert_null(cfg->mqtt.password_file);
    assert_int_equal(cfg->mqtt.keepalive_s, 30);
    assert_false(cfg->mqtt.tls);
    assert_string_equal(cfg->persistence.db_path, "data/state_store.db");
    assert_int_equal(cfg->persistence.commit_interval_ms, 100);
    assert_true(cfg->persistence.history_enabled);
    assert_int_equal(cfg->persistence.history_max_rows, 10000);
    assert_int_equal(cfg->persistence.history_max_age_days, 30);
    assert_string_equal(cfg->http.listen, "127.0.0.1:8080");
    assert_null(cfg->http.token);
    assert_int_equal(cfg->log_level, LOG_LVL_INFO);
    assert_string_equal(cfg->bridge_device_id, "wb-mqtt-bridge");
    assert_int_equal(cfg->mirror_min_interval_ms, 250);
    assert_false(cfg->homeassistant.enabled);
    assert_string_equal(cfg->homeassistant.discovery_prefix, "homeassistant");
    assert_string_equal(cfg->homeassistant.node_id, "wb-mqtt-bridge");
    assert_string_equal(cfg->homeassistant.base_topic, "wb-mqtt-bridge");
    assert_string_equal(cfg->homeassistant.status_topic, "homeassistant/status");
    assert_int_equal(cfg->homeassistant.republish_delay_ms, 1000);
    assert_int_equal(cfg->homeassistant.mark.line, 0);
    assert_int_equal(cfg->homeassistant.mark.column, 0);
    assert_int_equal(cfg->n_devices, 0);
    assert_int_equal(cfg->n_scenarios, 0);
}

static void test_defaults(void **state)
{
    (void)state;
    const char *texts[] = {"", "# only a comment\n", "mqtt:\npersistence: {}\n", "---\n...\n"};
    unsetenv("WB_MQTT_BRIDGE_PASSWORD");
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct config *cfg = NULL;
        struct cfg_errors errs = {0};
        wb_status st = parse_text(texts[i], &cfg, &errs);
        dump(&errs);
        assert_int_equal(st, WB_OK);
        check_defaults(cfg);
        cfg_free(cfg);
    }
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(load_fixture("comments_only.yaml", &cfg, &errs), WB_OK);
    check_defaults(cfg);
    cfg_free(cfg);
}

static void test_values_and_tls(void **state)
{
    (void)state;
    char ca[] = "/tmp/wbmb-ca-XXXXXX";
    int fd = mkstemp(ca);
    assert_true(fd >= 0);
    close(fd);
    char text[1024];
    snprintf(text, sizeof(text),
             "mqtt: {port: 8883, tls: {ca_file: %s}, username: u}\n"
             "persistence: {commit_interval_ms: 0, history: {enabled: false}}\n"
             "http: {listen: \"\"}\n"
             "log: {level: debug}\n"
             "bridge: {mirror_min_interval_ms: 0}\n",
             ca);
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(parse_text(text, &cfg, &errs), WB_OK);
    assert_int_equal(cfg->mirror_min_interval_ms, 0);
    assert_int_equal(cfg->mqtt.port, 8883);
    assert_true(cfg->mqtt.tls);
    assert_true(cfg->mqtt.tls_verify_hostname); /* on unless turned off */
    assert_int_equal(cfg->mqtt.protocol, CFG_MQTT_5);
    assert_int_equal(cfg->mqtt.flap_disconnects, 3);
    assert_int_equal(cfg->mqtt.flap_window_s, 60);
    assert_string_equal(cfg->mqtt.ca_file, ca);
    assert_null(cfg->mqtt.cert_file);
    assert_string_equal(cfg->mqtt.username, "u");
    assert_int_equal(cfg->persistence.commit_interval_ms, 0);
    assert_false(cfg->persistence.history_enabled);
    assert_string_equal(cfg->http.listen, "");
    assert_int_equal(cfg->log_level, LOG_LVL_DEBUG);
    cfg_free(cfg);

    snprintf(text, sizeof(text),
             "mqtt:\n  protocol: 3.1.1\n  flap_disconnects: 5\n  flap_window_s: 10\n"
             "  tls: {ca_file: %s, verify_hostname: false}\n",
             ca);
    assert_int_equal(parse_text(text, &cfg, &errs), WB_OK);
    assert_int_equal(cfg->mqtt.protocol, CFG_MQTT_311);
    assert_int_equal(cfg->mqtt.flap_disconnects, 5);
    assert_int_equal(cfg->mqtt.flap_window_s, 10);
    assert_false(cfg->mqtt.tls_verify_hostname);
    cfg_free(cfg);
    unlink(ca);
}

/* Issue 14: a TLS file that is missing or unreadable is a config error at
 * its key (it passed --check-config and then made the bridge retry for
 * ever); so is an unknown protocol. */
static void test_tls_files_checked(void **state)
{
    (void)state;
    const char *text = "mqtt:\n"
                       "  protocol: 4\n"
                       "  tls:\n"
                       "    ca_file: /nonexistent/ca.pem\n"
                       "    cert_file: /nonexistent/c.pem\n"
                       "    key_file: /nonexistent/k.pem\n";
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(parse_text(text, &cfg, &errs), WB_ERR_CONFIG);
    assert_null(cfg);
    dump(&errs);
    assert_true(has_error(&errs, "2:13: protocol must be one of 5|3.1.1, got '4'"));
    assert_true(has_error(
        &errs, "4:14: cannot read tls.ca_file '/nonexistent/ca.pem': No such file or directory"));
    assert_true(has_error(
        &errs, "5:16: cannot read tls.cert_file '/nonexistent/c.pem': No such file or directory"));
    assert_true(has_error(
        &errs, "6:15: cannot read tls.key_file '/nonexistent/k.pem': No such file or directory"));
    cfg_errors_free(&errs);

    const char *dir = "mqtt: {tls: {ca_file: /tmp}}\n";
    assert_int_equal(parse_text(dir, &cfg, &errs), WB_ERR_CONFIG);
    assert_true(has_error(&errs, "1:23: tls.ca_file '/tmp' is not a regular file"));
    cfg_errors_free(&errs);
}

/* ---- broken fixtures ----------------------------------------------------- */

static void test_syntax_error(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(load_fixture("syntax_error.yaml", &cfg, &errs), WB_ERR_CONFIG);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    EXPECT(errs, "4:4: YAML syntax error: did not find expected ',' or ']' while parsing a flow "
                 "sequence (started at 3:9)");
    cfg_errors_free(&errs);

    /* A tab indentation, an alias and a second document are refused too. */
    assert_int_equal(parse_text("mqtt:\n\thost: x\n", &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 1);
    assert_true(has_substr(&errs, "t.yaml:2:1: YAML syntax error"));
    cfg_errors_free(&errs);
    assert_int_equal(parse_text("a: &x 1\nb: *x\n", &cfg, &errs), WB_ERR_CONFIG);
    EXPECT(errs, "2:4: YAML aliases are not supported in the config");
    cfg_errors_free(&errs);
    assert_int_equal(parse_text("log: {}\n---\nlog: {}\n", &cfg, &errs), WB_ERR_CONFIG);
    EXPECT(errs, "2:1: only one YAML document is allowed in the config");
    cfg_errors_free(&errs);
    assert_int_equal(parse_text("- a\n- b\n", &cfg, &errs), WB_ERR_CONFIG);
    EXPECT(errs, "1:1: the config must be a map of sections, got a list");
    cfg_errors_free(&errs);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(load_fixture("unknown_key.yaml", &cfg, &errs), WB_ERR_CONFIG);
    assert_null(cfg);
    assert_int_equal(errs.n, 3);
    EXPECT(errs, "3:3: unknown key 'prot' in mqtt");
    EXPECT(errs, "5:3: unknown key 'db_pth' in persistence");
    EXPECT(errs, "7:5: unknown key 'enable' in persistence.history");
    cfg_errors_free(&errs);

    assert_int_equal(parse_text("mqtt: {port: 1, port: 2}\nfoo: 1\n", &cfg, &errs), WB_ERR_CONFIG);
    EXPECT(errs, "1:17: duplicate key 'port' in mqtt (first at 1:8)");
    EXPECT(errs, "2:1: unknown key 'foo' in the top level");
    assert_int_equal(errs.n, 2);
    cfg_errors_free(&errs);
}

static void test_wrong_types(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(load_fixture("wrong_types.yaml", &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 7);
    EXPECT(errs, "2:9: port must be an integer between 1 and 65535, got 'abc'");
    EXPECT(errs, "3:16: keepalive_s must be an integer between 0 and 65535, got a list");
    EXPECT(errs, "5:23: commit_interval_ms must be an integer between 0 and 60000, got '60001'");
    EXPECT(errs, "7:14: enabled must be true or false, got 'maybe'");
    EXPECT(errs, "8:7: http must be a map, got a list");
    EXPECT(errs, "10:10: level must be one of error|warning|info|debug, got 'loud'");
    EXPECT(errs, "11:10: devices must be a list, got a map");
    /* Lines come sorted by position. */
    for (size_t i = 1; i < errs.n; i++) {
        int l0 = atoi(strchr(errs.lines[i - 1], ':') + 1);
        int l1 = atoi(strchr(errs.lines[i], ':') + 1);
        assert_true(l0 <= l1);
    }
    cfg_errors_free(&errs);
}

static void test_out_of_range(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(load_fixture("out_of_range.yaml", &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 2);
    EXPECT(errs, "2:9: port must be an integer between 1 and 65535, got '70000'");
    EXPECT(errs, "4:23: commit_interval_ms must be an integer between 0 and 60000, got '-1'");
    cfg_errors_free(&errs);

    assert_int_equal(parse_text("mqtt: {port: 0}\n", &cfg, &errs), WB_ERR_CONFIG);
    EXPECT(errs, "1:14: port must be an integer between 1 and 65535, got '0'");
    cfg_errors_free(&errs);
    assert_int_equal(parse_text("http: {listen: localhost}\n", &cfg, &errs), WB_ERR_CONFIG);
    assert_true(has_substr(&errs, "t.yaml:1:16: listen must be \"host:port\""));
    cfg_errors_free(&errs);
    assert_int_equal(parse_text("bridge: {mirror_min_interval_ms: 60001}\n", &cfg, &errs),
                     WB_ERR_CONFIG);
    EXPECT(errs,
           "1:34: mirror_min_interval_ms must be an integer between 0 and 60000, got '60001'");
    cfg_errors_free(&errs);
    assert_int_equal(parse_text("persistence: {commit_interval_ms: 60000}\n", &cfg, &errs), WB_OK);
    assert_int_equal(cfg->persistence.commit_interval_ms, 60000);
    cfg_free(cfg);
}

/* persistence.backend: sqlite by default, memory by name, anything else an
 * error at the value listing the valid names; store_config_from_cfg() maps it
 * to the store's backend name. */
static void test_persistence_backend(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    struct store_config sc;
    assert_int_equal(parse_text("persistence: {db_path: x.db}\n", &cfg, &errs), WB_OK);
    assert_int_equal(cfg->persistence.backend, CFG_STORE_SQLITE);
    store_config_from_cfg(&cfg->persistence, &sc);
    assert_string_equal(sc.backend, "sqlite");
    assert_string_equal(sc.db_path, "x.db");
    assert_int_equal(sc.commit_interval_ms, 100);
    assert_int_equal(sc.sync_interval_ms, 1000);
    assert_true(sc.history_enabled);
    assert_int_equal(sc.history_max_rows, 10000);
    assert_int_equal(sc.history_max_age_days, 30);
    assert_false(sc.read_only);
    cfg_free(cfg);
    assert_int_equal(parse_text("persistence:\n  backend: memory\n", &cfg, &errs), WB_OK);
    assert_int_equal(cfg->persistence.backend, CFG_STORE_MEMORY);
    store_config_from_cfg(&cfg->persistence, &sc);
    assert_string_equal(sc.backend, "memory");
    cfg_free(cfg);
    assert_int_equal(parse_text("persistence:\n  backend: postgres\n", &cfg, &errs), WB_ERR_CONFIG);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    assert_true(has_substr(
        &errs, "t.yaml:2:12: backend must be one of sqlite|memory|postgresql, got 'postgres'"));
    cfg_errors_free(&errs);

    /* postgresql: conninfo, site, password file (first line, read once),
     * connect_timeout_s; the site is required and checked. */
    char pw[] = "/tmp/wbmb_cfg_pw_XXXXXX";
    int fd = mkstemp(pw);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "s3cret\n", 7), 7);
    close(fd);
    char text[512];
    snprintf(text, sizeof(text),
             "persistence:\n  backend: postgresql\n  postgresql:\n"
             "    conninfo: \"host=a,b target_session_attrs=read-write\"\n"
             "    password_file: %s\n    site: flat-12.a\n",
             pw);
    assert_int_equal(parse_text(text, &cfg, &errs), WB_OK);
    assert_int_equal(cfg->persistence.backend, CFG_STORE_POSTGRESQL);
    store_config_from_cfg(&cfg->persistence, &sc);
    assert_string_equal(sc.backend, "postgresql");
    assert_string_equal(sc.pg_conninfo, "host=a,b target_session_attrs=read-write");
    assert_string_equal(sc.pg_password, "s3cret");
    assert_string_equal(sc.pg_site, "flat-12.a");
    assert_int_equal(sc.pg_connect_timeout_s, 60);
    assert_int_equal(sc.max_queued_rows, 100000);
    cfg_free(cfg);
    unlink(pw);
    assert_int_equal(parse_text("persistence:\n  backend: postgresql\n  postgresql:\n"
                                "    site: 'a b'\n",
                                &cfg, &errs),
                     WB_ERR_CONFIG);
    assert_int_equal(errs.n, 2);
    assert_true(has_substr(&errs, "persistence.postgresql.conninfo is required"));
    assert_true(has_substr(&errs, "t.yaml:4:11: persistence.postgresql.site is required"));
    cfg_errors_free(&errs);
}

static void test_duplicate_device(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(load_fixture("duplicate_device.yaml", &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 2);
    EXPECT(errs, "6:9: duplicate device id 'tv' (first defined at 2:9)");
    EXPECT(errs, "8:9: device id 'Bad-Id' must match [a-z0-9_]+");
    /* The whole line, file name included. */
    assert_non_null(strstr(errs.lines[0], "config/duplicate_device.yaml:6:9: duplicate"));
    cfg_errors_free(&errs);

    assert_int_equal(parse_text("devices:\n  - name: x\n", &cfg, &errs), WB_ERR_CONFIG);
    EXPECT(errs, "2:5: device 1 is missing required key 'id'");
    cfg_errors_free(&errs);
    const char *dup_scen = "devices: [{id: a}]\n"
                           "scenarios:\n  - {id: s, devices: [a, a]}\n  - {id: s}\n"
                           "  - {id: none}\n";
    assert_int_equal(parse_text(dup_scen, &cfg, &errs), WB_ERR_CONFIG);
    EXPECT(errs, "3:26: scenario 's' lists device 'a' twice");
    EXPECT(errs, "4:10: duplicate scenario id 's' (first defined at 3:10)");
    EXPECT(errs, "5:10: scenario id 'none' must match [a-z0-9_]+ and not be 'none'");
    cfg_errors_free(&errs);

    /* Listing is per scenario: 'b' listed by s1 does not count for s2, and
     * both may list 'a' once each; an unknown id listed twice is still
     * reported as such. */
    const char *per_scen =
        "devices: [{id: a}, {id: b, actions: {x: {topic: t}}}]\n"
        "scenarios:\n"
        "  - {id: s1, devices: [a, b]}\n"
        "  - {id: s2, devices: [a, zz, zz], startup: [{device: b, action: x}]}\n";
    assert_int_equal(parse_text(per_scen, &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 4);
    EXPECT(errs, "4:27: scenario 's2' lists unknown device 'zz'");
    EXPECT(errs, "4:31: scenario 's2' lists unknown device 'zz'");
    EXPECT(errs, "4:31: scenario 's2' lists device 'zz' twice");
    EXPECT(errs, "4:55: scenario 's2' step uses device 'b' which is not in its devices list");
    cfg_errors_free(&errs);
}

static void test_bad_refs(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(load_fixture("bad_refs.yaml", &cfg, &errs), WB_ERR_CONFIG);
    assert_null(cfg);
    assert_int_equal(errs.n, 9);
    EXPECT(errs, "15:19: scenario 'movie' lists unknown device 'ghost'");
    EXPECT(errs, "17:30: scenario 'movie' step refers to unknown action 'power_of' of device 'tv'");
    EXPECT(errs, "18:18: scenario 'movie' step refers to unknown device 'radio'");
    EXPECT(errs, "19:18: scenario 'movie' step uses device 'amp' which is not in its devices list");
    EXPECT(errs, "20:58: scenario 'movie' step: param 'level' of action 'set_volume' must be an "
                 "integer between 0 and 100, got '300'");
    EXPECT(errs, "21:9: scenario 'movie' step: action 'set_volume' of device 'tv' needs param "
                 "'level'");
    EXPECT(errs,
           "21:51: scenario 'movie' step: action 'set_volume' of device 'tv' has no param 'lvl'");
    EXPECT(errs, "22:58: scenario 'movie' step: param 'level' of action 'set_volume' must be an "
                 "integer between 0 and 100, got 'loud'");
    EXPECT(errs, "24:9: scenario 'movie' shutdown step 1: bad when 'power > 1': expected FIELD "
                 "== VALUE or FIELD != VALUE");
    cfg_errors_free(&errs);
}

static void test_bad_when_in_file(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(load_fixture("bad_when.yaml", &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 4);
    EXPECT(errs, "9:9: scenario 's' startup step 1: bad when 'power': expected FIELD == VALUE "
                 "or FIELD != VALUE");
    EXPECT(errs, "10:9: scenario 's' startup step 2: bad when '== true': missing field name "
                 "before the operator");
    assert_true(has_substr(&errs, ":11:9: scenario 's' startup step 3: bad when 'power >= 3'"));
    assert_true(has_substr(&errs, ":12:9: scenario 's' startup step 4: bad when"));
    cfg_errors_free(&errs);
}

static void test_bad_templates(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(load_fixture("bad_templates.yaml", &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 12);
    EXPECT(errs, "5:52: field is not allowed in a state binding of type json (use fields)");
    EXPECT(errs, "6:17: state topic '/devices/d/#/x' of device 'dimmer' is not a valid MQTT "
                 "topic filter");
    EXPECT(errs, "7:17: state topic '/devices/d/a+' of device 'dimmer' is not a valid MQTT "
                 "topic filter");
    EXPECT(errs, "8:9: state binding 5 of device 'dimmer' needs 'field' (its type is not json)");
    EXPECT(errs, "12:18: payload of action 'set_level' of device 'dimmer' refers to undeclared "
                 "param 'lvl'");
    EXPECT(errs, "14:35: min 10 is greater than max 0 in param 'level' of action 'set_level' of "
                 "device 'dimmer'");
    EXPECT(errs, "15:55: default of param 'mode' of action 'set_level' of device 'dimmer' must "
                 "be one of a|b, got 'c'");
    EXPECT(errs, "16:39: set value of 'note' in action 'set_level' of device 'dimmer' refers to "
                 "undeclared param 'nope'");
    EXPECT(errs, "18:16: topic '/devices/d/+/on' of action 'raw' of device 'dimmer' must be a "
                 "valid MQTT topic name (non-empty, no wildcards, control characters or "
                 "non-characters)");
    /* A JSON-object payload is checked with the same grammar and wording. */
    EXPECT(errs, "19:18: payload of action 'raw' of device 'dimmer' refers to undeclared param "
                 "'nope'");
    EXPECT(errs, "21:7: availability needs a topic or timeout_s > 0");
    cfg_errors_free(&errs);

    /* Escaped braces and declared params are fine; a lone '}' is not. */
    const char *ok = "devices:\n  - id: d\n    actions:\n      a:\n        topic: x/on\n"
                     "        payload: '{{\"v\":{v}}}'\n        params: {v: {type: float}}\n"
                     "        set: {v: \"{v}\", s: \"{{}}\"}\n";
    assert_int_equal(parse_text(ok, &cfg, &errs), WB_OK);
    cfg_free(cfg);
    const char *lone = "devices:\n  - id: d\n    actions:\n      a: {topic: x, payload: 'a}b'}\n";
    assert_int_equal(parse_text(lone, &cfg, &errs), WB_ERR_CONFIG);
    assert_true(has_substr(&errs, "payload of action 'a' of device 'd': stray '}' at offset 1 "
                                  "of the template (write '}}' for a literal brace)"));
    cfg_errors_free(&errs);

    /* A set value is rendered in plain mode, so a JSON-looking one is
     * refused at load rather than at every run of the action. */
    const char *jset = "devices:\n  - id: d\n    actions:\n"
                       "      a: {topic: x, set: {v: '{\"a\": 1}'}}\n";
    assert_int_equal(parse_text(jset, &cfg, &errs), WB_ERR_CONFIG);
    assert_true(has_substr(&errs, "set value of 'v' in action 'a' of device 'd': stray '{' at "
                                  "offset 0"));
    cfg_errors_free(&errs);
}

static void test_wrong_shapes(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(load_fixture("wrong_shapes.yaml", &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 19);
    EXPECT(errs, "2:5: devices entries must be a map, got 'just a string'");
    EXPECT(errs, "4:12: state of device 'tv' must be a list, got a map");
    EXPECT(errs, "5:14: actions of device 'tv' must be a map, got a list");
    EXPECT(errs, "6:20: transient entries must be a string, got a list");
    EXPECT(errs, "7:19: availability must be a map, got a list");
    /* The skipped first entry does not confuse where 'tv' was first defined. */
    EXPECT(errs, "8:9: duplicate device id 'tv' (first defined at 3:9)");
    EXPECT(errs, "9:16: wb_mirror must be true or false, got 'yes'");
    EXPECT(errs, "13:33: param 'p' of action 'b' of device 'amp' of type enum needs a list of "
                 "values");
    EXPECT(errs, "14:38: set value of 't' must be a scalar, got null");
    EXPECT(errs, "17:14: devices of scenario 's' must be a list, got 'tv'");
    EXPECT(errs, "18:14: startup of scenario 's' must be a list, got a map");
    EXPECT(errs, "20:9: scenario 's' shutdown step 1: when must be a string like \"field == "
                 "value\"");
    EXPECT(errs, "20:60: delay_after_ms must be an integer between 0 and 3600000, got '3600001'");
    cfg_errors_free(&errs);
}

/* Every prefix of every fixture must load or fail cleanly: no crash, no
 * leak, and a failure always comes with at least one error line. */
static void test_truncated_inputs(void **state)
{
    (void)state;
    const char *files[] = {"../../config/example.yaml", "config/bad_refs.yaml",
                           "config/bad_templates.yaml", "config/wrong_shapes.yaml"};
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        char *p = data_path(files[f]);
        FILE *fp = fopen(p, "rb");
        assert_non_null(fp);
        char buf[16384];
        size_t len = fread(buf, 1, sizeof(buf), fp);
        fclose(fp);
        free(p);
        for (size_t n = 0; n <= len; n++) {
            struct config *cfg = NULL;
            struct cfg_errors errs = {0};
            wb_status st = cfg_parse("cut.yaml", buf, n, &cfg, &errs);
            if (st == WB_OK)
                assert_non_null(cfg);
            else
                assert_true(errs.n > 0 && !cfg);
            cfg_free(cfg);
            cfg_errors_free(&errs);
        }
    }
}

/* ---- secrets ------------------------------------------------------------- */

#define SECRET "s3cr3t-Pa55word"

static char *write_tmp(const char *content)
{
    char *p = strdup("/tmp/wbmb_cfg_XXXXXX");
    int fd = mkstemp(p);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return p;
}

static void test_secrets(void **state)
{
    (void)state;
    char *pw = write_tmp(SECRET "\n");
    char *tok = write_tmp("tok-123\n");
    char *text = NULL;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};

    setenv("WB_MQTT_BRIDGE_PASSWORD", "from-env", 1);
    assert_true(asprintf(&text, "mqtt: {password_file: %s}\nhttp: {token_file: %s}\n", pw, tok) >
                0);
    assert_int_equal(parse_text(text, &cfg, &errs), WB_OK);
    assert_string_equal(cfg->mqtt.password, SECRET); /* the file wins over the env */
    assert_string_equal(cfg->http.token, "tok-123");
    cfg_free(cfg);
    free(text);

    /* Env fallback when there is no password_file. */
    assert_int_equal(parse_text("mqtt: {username: u}\n", &cfg, &errs), WB_OK);
    assert_string_equal(cfg->mqtt.password, "from-env");
    cfg_free(cfg);
    unsetenv("WB_MQTT_BRIDGE_PASSWORD");
    assert_int_equal(parse_text("mqtt: {username: u}\n", &cfg, &errs), WB_OK);
    assert_null(cfg->mqtt.password);
    cfg_free(cfg);

    /* Other errors in the file: the secret is read, then freed, never printed. */
    assert_true(asprintf(&text, "mqtt: {password_file: %s, prot: 1}\n", pw) > 0);
    assert_int_equal(parse_text(text, &cfg, &errs), WB_ERR_CONFIG);
    assert_null(cfg);
    assert_false(has_substr(&errs, SECRET));
    cfg_errors_free(&errs);
    free(text);

    /* Unreadable files are named, their content never shown. */
    assert_int_equal(load_fixture("secret.yaml", &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 2);
    EXPECT(errs, "2:18: cannot read password_file '/nonexistent/wbmb-secret': No such file or "
                 "directory");
    EXPECT(errs, "4:15: cannot read token_file '/nonexistent/wbmb-token': No such file or "
                 "directory");
    cfg_errors_free(&errs);

    /* An oversized secret file (> 4 KiB) is refused without echoing it. */
    char big[6000];
    for (size_t i = 0; i + 1 < sizeof(big); i += strlen(SECRET))
        snprintf(big + i, sizeof(big) - i, "%s", SECRET);
    char *bigf = write_tmp(big);
    assert_true(asprintf(&text, "mqtt: {password_file: %s}\n", bigf) > 0);
    assert_int_equal(parse_text(text, &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 1);
    assert_true(has_substr(&errs, "file is larger than 4 KiB"));
    assert_false(has_substr(&errs, SECRET));
    cfg_errors_free(&errs);
    free(text);

    unlink(pw);
    unlink(tok);
    unlink(bigf);
    free(pw);
    free(tok);
    free(bigf);
}

static void test_missing_file(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(cfg_load("/nonexistent/wbmb.yaml", &cfg, &errs), WB_ERR_NOT_FOUND);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.lines[0],
                        "/nonexistent/wbmb.yaml:1:1: cannot read the config: No such file or "
                        "directory");
    cfg_errors_free(&errs);
    cfg_errors_free(&errs); /* idempotent */
}

/* ---- when: conditions ---------------------------------------------------- */

static void expect_cond(const char *text, const char *field, enum cfg_cond_op op, json_type type,
                        const char *value_json)
{
    char err[128] = "";
    struct cfg_condition *c = cfg_condition_parse(text, err, sizeof(err));
    if (!c)
        fail_msg("'%s' rejected: %s", text, err);
    assert_string_equal(c->field, field);
    assert_int_equal(c->op, op);
    assert_true(json_object_is_type(c->value, type));
    assert_string_equal(json_object_to_json_string_ext(c->value, JSON_C_TO_STRING_PLAIN),
                        value_json);
    cfg_condition_free(c);
}

static void test_condition_good(void **state)
{
    (void)state;
    expect_cond("power != true", "power", CFG_COND_NE, json_type_boolean, "true");
    expect_cond("input == hdmi1", "input", CFG_COND_EQ, json_type_string, "\"hdmi1\"");
    expect_cond("volume == 30", "volume", CFG_COND_EQ, json_type_int, "30");
    expect_cond("mode == \"night mode\"", "mode", CFG_COND_EQ, json_type_string, "\"night mode\"");
    expect_cond("mode=='a b'", "mode", CFG_COND_EQ, json_type_string, "\"a b\"");
    expect_cond("  t != -1.5  ", "t", CFG_COND_NE, json_type_double, "-1.5");
    expect_cond("on == false", "on", CFG_COND_EQ, json_type_boolean, "false");
    expect_cond("state == ON", "state", CFG_COND_EQ, json_type_string, "\"ON\"");
    expect_cond("x == ''", "x", CFG_COND_EQ, json_type_string, "\"\"");
    expect_cond("a.b == 1", "a.b", CFG_COND_EQ, json_type_int, "1");
    cfg_condition_free(NULL);
}

static void test_condition_bad(void **state)
{
    (void)state;
    const char *bad[] = {
        "",           "power",     "power > 1",    "power >= 1", "== true",
        "power ==",   "power != ", "power = true", "a b == 1",   "x == 'a' junk",
        "x == \"abc", "x == a b",  "x == a == b",  "x === 1",    "x == !y",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[128] = "";
        struct cfg_condition *c = cfg_condition_parse(bad[i], err, sizeof(err));
        if (c)
            fail_msg("'%s' accepted", bad[i]);
        assert_true(err[0] != '\0');
    }
}

/* Loads every fixture repeatedly: a leak on any error path fails under ASan. */
static void test_all_fixtures_no_leaks(void **state)
{
    (void)state;
    const char *files[] = {"syntax_error.yaml",  "unknown_key.yaml",      "wrong_types.yaml",
                           "out_of_range.yaml",  "duplicate_device.yaml", "bad_refs.yaml",
                           "bad_when.yaml",      "bad_templates.yaml",    "secret.yaml",
                           "comments_only.yaml", "wrong_shapes.yaml"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct config *cfg = NULL;
        struct cfg_errors errs = {0};
        wb_status st = load_fixture(files[i], &cfg, &errs);
        if (st == WB_OK) {
            assert_int_equal(errs.n, 0);
            cfg_free(cfg);
        } else {
            assert_null(cfg);
            assert_true(errs.n > 0);
            for (size_t j = 0; j < errs.n; j++)
                assert_non_null(strstr(errs.lines[j], files[i]));
        }
        cfg_errors_free(&errs);
    }
}

static void test_own_mirror_topic(void **state)
{
    (void)state;
    const char *text = "devices:\n"
                       "  - id: tv\n"
                       "    state:\n"
                       "      - {topic: /devices/tv/controls/volume, field: v, type: int}\n"
                       "      - {topic: '/devices/+/controls/volume', field: w, type: int}\n"
                       "  - id: ext\n"
                       "    wb_mirror: false\n"
                       "    state:\n"
                       "      - {topic: /devices/ext/controls/x, field: x, type: int}\n";
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    /* The rule is the mirror's (mirror_check_config), run by every load once
     * registered, as main() does. */
    assert_true(cfg_add_check(mirror_check_config));
    assert_int_equal(cfg_parse("own.yaml", text, strlen(text), &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 1); /* wildcards and wb_mirror: false are fine */
    assert_non_null(
        strstr(errs.lines[0], "own.yaml:4:9: state topic '/devices/tv/controls/volume'"));
    assert_non_null(strstr(errs.lines[0], "wb_mirror: false"));
    cfg_errors_free(&errs);
}

/* ---- big configs: the devices list is streamed ---------------------------- */

#define MANY 3000

/* MANY devices, 5 lines each from line 2 (device i starts at line 2 + 5 i,
 * its id value at column 9), even ones with an int binding, odd ones json;
 * extra is appended as is. Free the result. */
static char *many_devices(const char *extra)
{
    size_t cap = MANY * 160 + strlen(extra) + 64, len = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    len += (size_t)snprintf(t + len, cap - len, "devices:\n");
    for (int i = 0; i < MANY; i++) {
        if (i % 2 == 0)
            len += (size_t)snprintf(t + len, cap - len,
                                    "  - id: dev%d\n    name: Device %d\n    type: bench\n"
                                    "    state:\n      - {topic: big/dev%d/value, field: value, "
                                    "type: int}\n",
                                    i, i, i);
        else
            len += (size_t)snprintf(t + len, cap - len,
                                    "  - id: dev%d\n    name: Device %d\n    wb_mirror: false\n"
                                    "    state:\n      - {topic: big/dev%d/json, type: json}\n",
                                    i, i, i);
        assert_true(len < cap);
    }
    len += (size_t)snprintf(t + len, cap - len, "%s", extra);
    assert_true(len < cap);
    return t;
}

/* Writes len bytes of text to a fresh temporary file; free (and unlink)
 * the returned path. */
static char *write_tmp_len(const char *text, size_t len)
{
    char *p = strdup("/tmp/wbmb_cfg_XXXXXX");
    int fd = mkstemp(p);
    assert_true(fd >= 0);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, text + off, len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    close(fd);
    return p;
}

static void assert_same_strings(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

/* The parts of two configs the loader builds entry by entry. */
static void assert_same_config(const struct config *a, const struct config *b)
{
    assert_int_equal(a->n_devices, b->n_devices);
    for (size_t i = 0; i < a->n_devices; i++) {
        const struct cfg_device *x = &a->devices[i], *y = &b->devices[i];
        assert_string_equal(x->id, y->id);
        assert_same_strings(x->name, y->name);
        assert_same_strings(x->type, y->type);
        assert_int_equal(x->wb_mirror, y->wb_mirror);
        assert_int_equal(x->mark.line, y->mark.line);
        assert_int_equal(x->mark.column, y->mark.column);
        assert_int_equal(x->n_state, y->n_state);
        for (size_t k = 0; k < x->n_state; k++) {
            assert_string_equal(x->state[k].topic, y->state[k].topic);
            assert_int_equal(x->state[k].type, y->state[k].type);
            assert_same_strings(x->state[k].field, y->state[k].field);
            assert_int_equal(x->state[k].n_fields, y->state[k].n_fields);
        }
        assert_int_equal(x->n_transient, y->n_transient);
        assert_int_equal(x->n_actions, y->n_actions);
        assert_int_equal(x->availability != NULL, y->availability != NULL);
    }
    assert_int_equal(a->n_scenarios, b->n_scenarios);
    for (size_t i = 0; i < a->n_scenarios; i++) {
        assert_string_equal(a->scenarios[i].id, b->scenarios[i].id);
        assert_int_equal(a->scenarios[i].n_startup, b->scenarios[i].n_startup);
    }
}

/* cfg_load(path) and cfg_parse(path, its text) give the same status, the
 * same error lines and the same config. */
static void assert_load_equals_parse(const char *path, const char *text, size_t len)
{
    struct config *c1 = NULL, *c2 = NULL;
    struct cfg_errors e1 = {0}, e2 = {0};
    wb_status s1 = cfg_load(path, &c1, &e1);
    wb_status s2 = cfg_parse(path, text, len, &c2, &e2);
    assert_int_equal(s1, s2);
    assert_int_equal(e1.n, e2.n);
    for (size_t i = 0; i < e1.n; i++)
        assert_string_equal(e1.lines[i], e2.lines[i]);
    assert_int_equal(c1 != NULL, c2 != NULL);
    if (c1)
        assert_same_config(c1, c2);
    cfg_free(c1);
    cfg_free(c2);
    cfg_errors_free(&e1);
    cfg_errors_free(&e2);
}

static void test_many_devices(void **state)
{
    (void)state;
    char *text = many_devices("scenarios:\n  - {id: s, devices: [dev0, dev2999]}\n");
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    wb_status st = parse_text(text, &cfg, &errs);
    dump(&errs);
    assert_int_equal(st, WB_OK);
    assert_int_equal(cfg->n_devices, MANY);
    for (int i = 0; i < MANY; i++) {
        const struct cfg_device *d = &cfg->devices[i];
        char id[32], name[32], topic[64];
        snprintf(id, sizeof(id), "dev%d", i);
        snprintf(name, sizeof(name), "Device %d", i);
        snprintf(topic, sizeof(topic), "big/dev%d/%s", i, i % 2 ? "json" : "value");
        assert_string_equal(d->id, id);
        assert_string_equal(d->name, name);
        assert_int_equal(d->mark.line, 2 + 5 * i);
        assert_int_equal(d->mark.column, 5);
        assert_int_equal(d->wb_mirror, i % 2 == 0);
        assert_int_equal(d->n_state, 1);
        assert_string_equal(d->state[0].topic, topic);
        assert_int_equal(d->state[0].type, i % 2 ? CFG_T_JSON : CFG_T_INT);
    }
    assert_ptr_equal(cfg_find_device(cfg, "dev2999"), &cfg->devices[MANY - 1]);
    /* The one index: every id at its position in cfg->devices. */
    for (int i = 0; i < MANY; i++) {
        char id[32];
        snprintf(id, sizeof(id), "dev%d", i);
        assert_int_equal(cfg_device_index(cfg, id), i);
    }
    assert_int_equal(cfg_device_index(cfg, "dev3000"), -1);
    assert_int_equal(cfg_device_index(cfg, ""), -1);
    assert_int_equal(cfg_device_index(cfg, NULL), -1);
    assert_int_equal(cfg_device_index(NULL, "dev0"), -1);
    assert_null(cfg_find_device(NULL, "dev0"));
    assert_int_equal(cfg->n_scenarios, 1);
    cfg_free(cfg);

    /* The same text from a file, read in chunks. */
    char *p = write_tmp_len(text, strlen(text));
    assert_load_equals_parse(p, text, strlen(text));
    unlink(p);
    free(p);
    free(text);
}

static void test_many_devices_errors(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};

    /* A duplicate far from the first: named with the first's position. */
    char *text = many_devices("  - id: dev7\n");
    assert_int_equal(parse_text(text, &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 1);
    EXPECT(errs, "15002:9: duplicate device id 'dev7' (first defined at 37:9)");
    cfg_errors_free(&errs);
    free(text);

    /* Entries' errors and top-level errors come out sorted by position,
     * though the entries are walked while the file is still being parsed. */
    text = many_devices("  - {id: dev1, bogus: 1}\nlog: {lvl: 1}\n");
    memcpy(strstr(text, "name: Device 5\n"), "nome", 4);
    char *withtop = NULL;
    assert_true(asprintf(&withtop, "mqtt: {prot: 1}\n%s", text) > 0);
    assert_int_equal(parse_text(withtop, &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 5);
    assert_string_equal(errs.lines[0], "t.yaml:1:8: unknown key 'prot' in mqtt");
    assert_string_equal(errs.lines[1], "t.yaml:29:5: unknown key 'nome' in device 'dev5'");
    assert_string_equal(errs.lines[2],
                        "t.yaml:15003:10: duplicate device id 'dev1' (first defined at 8:9)");
    assert_string_equal(errs.lines[3], "t.yaml:15003:16: unknown key 'bogus' in device 'dev1'");
    assert_string_equal(errs.lines[4], "t.yaml:15004:7: unknown key 'lvl' in log");
    cfg_errors_free(&errs);
    free(withtop);
    free(text);
}

static void test_devices_shapes(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};

    /* Not a list: the tree keeps it and the old errors appear. */
    assert_int_equal(parse_text("devices: {a: 1}\n", &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 1);
    EXPECT(errs, "1:10: devices must be a list, got a map");
    cfg_errors_free(&errs);
    assert_int_equal(parse_text("log: {}\ndevices: tv\n", &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 1);
    EXPECT(errs, "2:10: devices must be a list, got 'tv'");
    cfg_errors_free(&errs);

    /* Empty, flow and block lists; entries that are not maps. */
    const char *empty[] = {"devices:\n", "devices: []\n", "devices: ~\n"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        assert_int_equal(parse_text(empty[i], &cfg, &errs), WB_OK);
        assert_int_equal(cfg->n_devices, 0);
        cfg_free(cfg);
    }
    assert_int_equal(parse_text("devices: [{id: a}, {id: b}]\n", &cfg, &errs), WB_OK);
    assert_int_equal(cfg->n_devices, 2);
    assert_string_equal(cfg->devices[1].id, "b");
    assert_int_equal(cfg->devices[1].mark.column, 20);
    cfg_free(cfg);
    assert_int_equal(parse_text("devices:\n- x\n-\n- id: a\n- id: a\n", &cfg, &errs),
                     WB_ERR_CONFIG);
    assert_int_equal(errs.n, 3);
    EXPECT(errs, "2:3: devices entries must be a map, got 'x'");
    EXPECT(errs, "3:2: devices entries must be maps, got nothing");
    EXPECT(errs, "5:7: duplicate device id 'a' (first defined at 4:7)");
    cfg_errors_free(&errs);

    /* The first "id" key of an entry is where that id was first defined. */
    assert_int_equal(parse_text("devices:\n  - {id: a, id: b}\n  - {id: a}\n", &cfg, &errs),
                     WB_ERR_CONFIG);
    EXPECT(errs, "3:10: duplicate device id 'a' (first defined at 2:10)");
    cfg_errors_free(&errs);

    /* A devices key below the top level is an ordinary list. */
    assert_int_equal(
        parse_text("devices: [{id: a}]\nscenarios:\n  - {id: s, devices: [a, a]}\n", &cfg, &errs),
        WB_ERR_CONFIG);
    assert_int_equal(errs.n, 1);
    EXPECT(errs, "3:26: scenario 's' lists device 'a' twice");
    cfg_errors_free(&errs);

    /* Depth limit and alias refusal inside a streamed entry. */
    char deep[300];
    snprintf(deep, sizeof(deep), "devices:\n  - id: a\n    name: %.*s%.*s\n", 70,
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 70,
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    assert_int_equal(parse_text(deep, &cfg, &errs), WB_ERR_CONFIG);
    assert_int_equal(errs.n, 1);
    EXPECT(errs, "3:73: YAML nested too deeply");
    cfg_errors_free(&errs);
    assert_int_equal(parse_text("devices:\n  - id: &x a\n  - id: *x\n", &cfg, &errs),
                     WB_ERR_CONFIG);
    assert_int_equal(errs.n, 1);
    EXPECT(errs, "3:9: YAML aliases are not supported in the config");
    cfg_errors_free(&errs);
}

/* A syntax error after some entries were streamed: only it is reported
 * (the first entry's unknown key is dropped with the entry), at its place. */
static void test_syntax_error_in_device(void **state)
{
    (void)state;
    const char *texts[] = {
        "mqtt: {host: x}\ndevices:\n  - id: a\n    bogus: 1\n  - id: b\n    state: [x\n"
        "log: {level: info}\n",
        "devices:\n  - id: a\n    bogus: 1\n  - id: b\n     name: bad\n",
    };
    const char *want[] = {
        "7:4: YAML syntax error: did not find expected ',' or ']' while parsing a flow sequence "
        "(started at 6:12)",
        "5:10: YAML syntax error: mapping values are not allowed in this context",
    };
    for (size_t i = 0; i < 2; i++) {
        struct config *cfg = NULL;
        struct cfg_errors errs = {0};
        assert_int_equal(parse_text(texts[i], &cfg, &errs), WB_ERR_CONFIG);
        assert_null(cfg);
        assert_int_equal(errs.n, 1);
        EXPECT(errs, want[i]);
        cfg_errors_free(&errs);
        char *p = write_tmp_len(texts[i], strlen(texts[i]));
        char *line = NULL;
        assert_true(asprintf(&line, "%s:%s", p, want[i]) > 0);
        assert_int_equal(cfg_load(p, &cfg, &errs), WB_ERR_CONFIG);
        assert_int_equal(errs.n, 1);
        assert_string_equal(errs.lines[0], line);
        free(line);
        cfg_errors_free(&errs);
        unlink(p);
        free(p);
    }
}

#define MAX_FILE (4u * 1024 * 1024)

/* size bytes of comment lines (a valid, empty config). */
static char *comments(size_t size)
{
    char *t = malloc(size);
    assert_non_null(t);
    memset(t, '#', size);
    for (size_t i = 63; i < size; i += 64)
        t[i] = '\n';
    return t;
}

static void test_file_limits(void **state)
{
    (void)state;
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    char *text = comments(MAX_FILE + 1);

    /* 4 MiB exactly is fine; one byte more is refused before parsing. */
    char *p = write_tmp_len(text, MAX_FILE);
    assert_int_equal(cfg_load(p, &cfg, &errs), WB_OK);
    cfg_free(cfg);
    unlink(p);
    free(p);
    p = write_tmp_len(text, MAX_FILE + 1);
    assert_int_equal(cfg_load(p, &cfg, &errs), WB_ERR_IO);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    assert_true(has_substr(&errs, ":1:1: cannot read the config: file is larger than 4 MiB"));
    cfg_errors_free(&errs);
    unlink(p);
    free(p);

    /* A pipe has no size up front: the limit holds while reading. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        for (int i = 0; i < 2; i++)
            if (write(fds[1], text, MAX_FILE) < 0)
                break;
        _exit(0);
    }
    close(fds[1]);
    char path[64];
    snprintf(path, sizeof(path), "/dev/fd/%d", fds[0]);
    assert_int_equal(cfg_load(path, &cfg, &errs), WB_ERR_IO);
    assert_int_equal(errs.n, 1);
    assert_true(has_substr(&errs, ":1:1: cannot read the config: file is larger than 4 MiB"));
    cfg_errors_free(&errs);
    close(fds[0]); /* the writer gets EPIPE (or SIGPIPE) and stops */
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    free(text);

    /* A read error is reported as such, not as a syntax error. */
    assert_int_equal(cfg_load("/tmp", &cfg, &errs), WB_ERR_IO);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.lines[0], "/tmp:1:1: cannot read the config: Is a directory");
    cfg_errors_free(&errs);
}

/* cfg_load() streams the file, cfg_parse() reads memory: same results. */
static void test_load_equals_parse(void **state)
{
    (void)state;
    const char *files[] = {
        "../../config/example.yaml", "config/syntax_error.yaml", "config/unknown_key.yaml",
        "config/wrong_types.yaml",   "config/out_of_range.yaml", "config/duplicate_device.yaml",
        "config/bad_refs.yaml",      "config/bad_when.yaml",     "config/bad_templates.yaml",
        "config/comments_only.yaml", "config/wrong_shapes.yaml"};
    unsetenv("WB_MQTT_BRIDGE_PASSWORD");
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        char *p = data_path(files[f]);
        FILE *fp = fopen(p, "rb");
        assert_non_null(fp);
        char buf[16384];
        size_t len = fread(buf, 1, sizeof(buf), fp);
        fclose(fp);
        assert_load_equals_parse(p, buf, len);
        free(p);
    }
}

/* ---- issue 17: map, scale, wb, switch, json_field, wb_legacy_meta ------- */

static const struct cfg_map_entry *map_entry(const struct cfg_field_spec *s, const char *from)
{
    for (size_t i = 0; i < s->n_map; i++)
        if (strcmp(s->map[i].from, from) == 0)
            return &s->map[i];
    return NULL;
}

/* Every new key accepted, with what it parses into. */
static void test_field_specs_good(void **state)
{
    (void)state;
    const char *text =
        "bridge: {wb_legacy_meta: false}\n"
        "devices:\n"
        "  - id: plug\n"
        "    availability: {topic: z2m/plug/availability, json_field: status}\n"
        "    state:\n"
        "      - topic: z2m/plug\n"
        "        type: json\n"
        "        fields:\n"
        "          power:\n"
        "            path: state\n"
        "            map: {\"ON\": true, \"OFF\": false}\n"
        "            switch: {on: turn_on, off: turn_off}\n"
        "            wb: {title: {en: Power, ru: \"Питание\"}}\n"
        "          energy: {path: energy.total, scale: 0.001, wb: {units: kWh, precision: 0.001,\n"
        "                   order: 2, readonly: false, hidden: true}}\n"
        "          mode: {path: mode, wb: {type: text, enum: {0: {en: Off, ru: \"Выкл\"}, "
        "eco: {en: Eco}}}}\n"
        "          lq: linkquality\n"
        "      - topic: x/temp\n"
        "        type: int\n"
        "        field: temp\n"
        "        scale: 10\n"
        "        map: {\"n/a\": -1}\n"
        "        wb: {type: temperature, min: -40, max: 100, enum: {-1: {en: unknown}}}\n"
        "      - topic: x/level\n"
        "        type: float\n"
        "        field: level\n"
        "        scale: -0.5\n"
        "        map: {full: 100}\n"
        "        wb: {type: range, max: 100}\n"
        "      - topic: x/on\n"
        "        type: bool\n"
        "        field: on\n"
        "        map: {yes: true, \"no\": false}\n"
        "        switch: {on: turn_on, off: turn_off}\n"
        "        wb: {type: switch}\n"
        "      - topic: x/s\n"
        "        type: string\n"
        "        field: s\n"
        "        map: {1: one}\n"
        "        wb: {type: rgb}\n"
        "    actions:\n"
        "      turn_on: {topic: z2m/plug/set, payload: '{\"state\":\"ON\"}'}\n"
        "      turn_off:\n"
        "        topic: z2m/plug/set\n"
        "        payload: '{\"state\":\"{s}\"}'\n"
        "        params: {s: {type: string, default: \"OFF\"}}\n"
        "  - id: plain\n"
        "    availability: {topic: p/avail}\n";
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    wb_status st = parse_text(text, &cfg, &errs);
    dump(&errs);
    assert_int_equal(st, WB_OK);
    assert_false(cfg->wb_legacy_meta);
    const struct cfg_device *d = cfg_find_device(cfg, "plug");
    assert_string_equal(d->availability->json_field, "status");
    assert_string_equal(cfg_find_device(cfg, "plain")->availability->json_field, "state");

    const struct cfg_field_spec *p = cfg_field_spec(d, "power");
    assert_non_null(p);
    assert_int_equal(p->n_map, 2);
    assert_true(json_object_get_boolean(map_entry(p, "ON")->to));
    assert_false(json_object_get_boolean(map_entry(p, "OFF")->to));
    assert_string_equal(p->on_action, "turn_on");
    assert_string_equal(p->off_action, "turn_off");
    assert_null(p->wb->type);
    assert_string_equal(p->wb->title.en, "Power");
    assert_string_equal(p->wb->title.ru, "Питание");
    assert_int_equal(p->wb->readonly, -1);
    assert_int_equal(p->wb->mark.line, 13);
    assert_int_equal(p->wb->mark.column, 17);
    assert_string_equal(d->state[0].fields[0].path, "state");

    const struct cfg_field_spec *e = cfg_field_spec(d, "energy");
    assert_true(e->has_scale && e->scale == 0.001);
    assert_string_equal(e->wb->units, "kWh");
    assert_true(e->wb->has_precision && e->wb->precision == 0.001);
    assert_true(e->wb->has_order && e->wb->order == 2);
    assert_int_equal(e->wb->readonly, 0);
    assert_true(e->wb->hidden);
    assert_false(e->wb->has_min || e->wb->has_max);
    assert_string_equal(d->state[0].fields[1].path, "energy.total");

    const struct cfg_field_spec *m = cfg_field_spec(d, "mode");
    assert_int_equal(m->wb->n_enums, 2);
    assert_string_equal(m->wb->enums[0].value, "0");
    assert_string_equal(m->wb->enums[0].title.ru, "Выкл");
    assert_string_equal(m->wb->enums[1].value, "eco");
    assert_null(m->wb->enums[1].title.ru);
    const struct cfg_field_spec *lq = cfg_field_spec(d, "lq");
    assert_null(lq); /* no spec keys: no spec at all (8 bytes per binding, not a spec) */

    const struct cfg_field_spec *t = cfg_field_spec(d, "temp");
    assert_true(t->has_scale && t->scale == 10);
    assert_int_equal(json_object_get_int64(map_entry(t, "n/a")->to), -1);
    assert_string_equal(t->wb->type, "temperature");
    assert_true(t->wb->has_min && t->wb->min == -40 && t->wb->has_max && t->wb->max == 100);
    assert_string_equal(t->wb->enums[0].value, "-1");
    /* A float binding's mapped number is a double. */
    const struct cfg_field_spec *l = cfg_field_spec(d, "level");
    assert_true(json_object_is_type(map_entry(l, "full")->to, json_type_double));
    const struct cfg_field_spec *o = cfg_field_spec(d, "on");
    assert_true(json_object_get_boolean(map_entry(o, "yes")->to));
    assert_string_equal(o->off_action, "turn_off");
    const struct cfg_field_spec *s = cfg_field_spec(d, "s");
    assert_string_equal(json_object_get_string(map_entry(s, "1")->to), "one");
    cfg_free(cfg);

    /* Defaults: wb_legacy_meta on. */
    assert_int_equal(parse_text("log: {level: info}\n", &cfg, &errs), WB_OK);
    assert_true(cfg->wb_legacy_meta);
    cfg_free(cfg);
}

/* Every wrong value of a new key, each at its position. */
static void test_field_specs_bad(void **state)
{
    (void)state;
    const char *text =
        "devices:\n"
        "  - id: d\n"
        "    availability: {topic: d/avail, json_field: [x]}\n"
        "    state:\n"
        "      - topic: d/json\n"
        "        type: json\n"
        "        map: {a: 1}\n"
        "        fields:\n"
        "          nopath: {map: {ON: true}}\n"
        "          sw_nonbool: {path: s, map: {ON: 1}, switch: {on: on}}\n"
        "          badwb: {path: w, wb: {type: foo}}\n"
        "          push: {path: p, wb: {type: pushbutton}}\n"
        "          unk: {path: u, colour: red}\n"
        "      - topic: d/int\n"
        "        type: int\n"
        "        field: i\n"
        "        scale: 0.5\n"
        "        map: {x: 1.5, y: ~}\n"
        "        wb: {type: switch, units: W, min: 5, max: 1, precision: 0, order: -1}\n"
        "      - topic: d/str\n"
        "        type: string\n"
        "        field: s\n"
        "        scale: 2\n"
        "        switch: {on: lvl, off: missing}\n"
        "        wb: {type: value, readonly: maybe, title: {de: Titel}, enum: {a: {fr: x}}}\n"
        "      - topic: d/float\n"
        "        type: float\n"
        "        field: f\n"
        "        scale: 0\n"
        "        map: {x: text}\n"
        "        wb: {type: rgb, enum: {a: {en: A}}, hidden: 3}\n"
        "      - topic: d/bool\n"
        "        type: bool\n"
        "        field: b\n"
        "        map: {x: 1}\n"
        "        scale: 2\n"
        "        wb: {type: range}\n"
        "    actions:\n"
        "      on: {topic: d/on}\n"
        "      lvl: {topic: d/lvl, payload: \"{v}\", params: {v: {type: int, required: true}}}\n"
        "bridge: {wb_legacy_meta: sometimes}\n";
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(parse_text(text, &cfg, &errs), WB_ERR_CONFIG);
    assert_null(cfg);
    EXPECT(errs, "3:48: json_field must be a string, got a list");
    EXPECT(errs, "7:14: map is not allowed on a state binding of type json: give it to a fields "
                 "entry ({path: ..., map: ...})");
    EXPECT(errs, "9:19: field 'nopath' of device 'd' is missing required key 'path'");
    EXPECT(errs, "10:55: switch of field 'sw_nonbool' of device 'd' is missing required key 'off'");
    EXPECT(errs, "10:55: switch of field 'sw_nonbool' of device 'd' needs a boolean field: its map "
                 "must give true or false only (map value of 'ON' is not)");
    EXPECT(
        errs,
        "11:39: wb.type 'foo' is not a Wiren Board control type (switch, alarm, range, rgb, text, "
        "value, unixtime, w1-id, or a named value type such as temperature, power, voltage)");
    EXPECT(errs, "12:38: wb.type pushbutton is not allowed on a state field (a push button has no "
                 "state: an action is mirrored as one)");
    EXPECT(errs, "13:26: unknown key 'colour' in field 'unk' of device 'd'");
    EXPECT(errs, "17:16: scale 0.5 of a state binding of type int is not a whole number: use type: "
                 "float for a fractional scale");
    EXPECT(errs,
           "18:18: map value of 'x' must be an integer (the binding's type is int), got '1.5'");
    EXPECT(errs, "18:26: map value of 'y' must be a boolean, a number or a string, got null");
    EXPECT(errs, "19:35: wb.units of field 'i' of device 'd' is only allowed for value-like types "
                 "(value, range, temperature, ...), not switch");
    EXPECT(errs, "19:43: wb.min 5 is greater than wb.max 1 in field 'i' of device 'd'");
    EXPECT(errs, "19:65: wb.precision of field 'i' of device 'd' must be > 0, got 0");
    EXPECT(errs, "19:75: order must be an integer between 0 and 2147483647, got '-1'");
    EXPECT(errs, "23:16: scale is only allowed on a state binding of type int or float or on a "
                 "fields entry (this binding's type is string)");
    EXPECT(errs, "24:17: switch of field 's' of device 'd' needs a boolean field: the binding's "
                 "type is string, not bool");
    EXPECT(errs, "24:17: switch of field 's' of device 'd' makes the control a switch, but wb.type "
                 "is value");
    EXPECT(errs, "24:22: switch of field 's' names action 'lvl', which needs param 'v': a switch "
                 "action must need no param");
    EXPECT(errs,
           "24:32: switch of field 's' names action 'missing', which device 'd' does not have");
    EXPECT(errs, "25:20: wb.type value does not fit a state binding of type string");
    EXPECT(errs, "25:37: readonly must be true or false, got 'maybe'");
    EXPECT(errs, "25:52: unknown key 'de' in wb.title of field 's' of device 'd'");
    EXPECT(
        errs,
        "25:71: wb.enum key 'a' of field 's' of device 'd' must be a number (its type is value)");
    EXPECT(errs, "25:75: unknown key 'fr' in wb.enum 'a' of field 's' of device 'd'");
    EXPECT(errs, "29:16: scale must not be 0");
    EXPECT(errs,
           "30:18: map value of 'x' must be a number (the binding's type is float), got 'text'");
    EXPECT(errs, "31:20: wb.type rgb does not fit a state binding of type float");
    EXPECT(errs, "31:31: wb.enum of field 'f' of device 'd' is only allowed for wb.type value or "
                 "text (not rgb)");
    EXPECT(errs, "31:53: hidden must be true or false, got '3'");
    EXPECT(errs,
           "35:18: map value of 'x' must be true or false (the binding's type is bool), got '1'");
    EXPECT(errs, "36:16: scale is only allowed on a state binding of type int or float or on a "
                 "fields entry (this binding's type is bool)");
    EXPECT(errs, "37:20: wb.type range does not fit a state binding of type bool");
    EXPECT(errs, "41:26: wb_legacy_meta must be true or false, got 'sometimes'");
    assert_int_equal(errs.n, 34);
    cfg_errors_free(&errs);
}

/* ---- homeassistant: ------------------------------------------------------ */

/* Every key of the section and of the blocks, with the defaults derived. */
static void test_homeassistant_good(void **state)
{
    (void)state;
    const char *text =
        "homeassistant:\n"
        "  enabled: true\n"
        "  discovery_prefix: ha/disc\n"
        "  node_id: My_Node-1\n"
        "  base_topic: wb/bridge\n"
        "  status_topic: ha/status\n"
        "  republish_delay_ms: 0\n"
        "devices:\n"
        "  - id: d\n"
        "    state:\n"
        "      - topic: d/t\n"
        "        type: float\n"
        "        field: temp\n"
        "        homeassistant: {device_class: temperature, state_class: measurement,\n"
        "                        icon: \"mdi:thermometer-lines\", entity_category: diagnostic}\n"
        "      - topic: d/on\n"
        "        type: bool\n"
        "        field: on\n"
        "        homeassistant: {device_class: power}\n"
        "      - topic: d/json\n"
        "        type: json\n"
        "        fields:\n"
        "          energy: {path: e, homeassistant: {device_class: energy, state_class: "
        "total_increasing}}\n"
        "          count: {path: c, homeassistant: {state_class: none}}\n"
        "          plain: {path: p, homeassistant: {}}\n"
        "          short: s\n"
        "    actions:\n"
        "      reboot: {topic: d/reboot, homeassistant: {device_class: restart, entity_category: "
        "config, icon: \"mdi:restart\"}}\n"
        "      other: {topic: d/other}\n";
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    wb_status st = parse_text(text, &cfg, &errs);
    dump(&errs);
    assert_int_equal(st, WB_OK);
    const struct cfg_homeassistant *h = &cfg->homeassistant;
    assert_true(h->enabled);
    assert_string_equal(h->discovery_prefix, "ha/disc");
    assert_string_equal(h->node_id, "My_Node-1");
    assert_string_equal(h->base_topic, "wb/bridge");
    assert_string_equal(h->status_topic, "ha/status");
    assert_int_equal(h->republish_delay_ms, 0);
    assert_int_equal(h->state_interval_ms, 250);
    assert_int_equal(h->mark.line, 1);
    assert_int_equal(h->mark.column, 1);

    const struct cfg_device *d = cfg_find_device(cfg, "d");
    const struct cfg_field_spec *t = cfg_field_spec(d, "temp");
    assert_non_null(t->ha);
    assert_null(t->wb);
    assert_string_equal(t->ha->device_class, "temperature");
    assert_string_equal(t->ha->state_class, "measurement");
    assert_string_equal(t->ha->icon, "mdi:thermometer-lines");
    assert_string_equal(t->ha->entity_category, "diagnostic");
    assert_int_equal(t->ha->mark.line, 14);
    assert_int_equal(t->ha->mark.column, 24);
    const struct cfg_field_spec *on = cfg_field_spec(d, "on");
    assert_string_equal(on->ha->device_class, "power");
    assert_null(on->ha->state_class);
    assert_null(on->ha->icon);
    assert_null(on->ha->entity_category);
    const struct cfg_field_spec *e = cfg_field_spec(d, "energy");
    assert_string_equal(e->ha->device_class, "energy");
    assert_string_equal(e->ha->state_class, "total_increasing");
    assert_string_equal(cfg_field_spec(d, "count")->ha->state_class, "none");
    const struct cfg_field_spec *pl = cfg_field_spec(d, "plain");
    assert_non_null(pl->ha); /* the block is given, if empty */
    assert_null(pl->ha->device_class);
    assert_null(cfg_field_spec(d, "short")); /* no spec key: no spec */

    const struct cfg_action *r = cfg_find_action(d, "reboot");
    assert_non_null(r->ha);
    assert_string_equal(r->ha->device_class, "restart");
    assert_string_equal(r->ha->entity_category, "config");
    assert_string_equal(r->ha->icon, "mdi:restart");
    assert_null(r->ha->state_class);
    assert_null(cfg_find_action(d, "other")->ha);
    cfg_free(cfg);

    /* Given, without values: every default; base_topic follows node_id and
     * status_topic discovery_prefix. */
    assert_int_equal(parse_text("\n  homeassistant:\n    discovery_prefix: a/b\n"
                                "    node_id: n\n    republish_delay_ms: 60000\n",
                                &cfg, &errs),
                     WB_OK);
    assert_false(cfg->homeassistant.enabled);
    assert_string_equal(cfg->homeassistant.base_topic, "n");
    assert_string_equal(cfg->homeassistant.status_topic, "a/b/status");
    assert_int_equal(cfg->homeassistant.republish_delay_ms, 60000);
    assert_int_equal(cfg->homeassistant.mark.line, 2);
    assert_int_equal(cfg->homeassistant.mark.column, 3);
    cfg_free(cfg);
    assert_int_equal(parse_text("homeassistant:\n", &cfg, &errs), WB_OK);
    assert_string_equal(cfg->homeassistant.discovery_prefix, "homeassistant");
    assert_string_equal(cfg->homeassistant.status_topic, "homeassistant/status");
    assert_int_equal(cfg->homeassistant.mark.line, 1);
    cfg_free(cfg);
}

/* node_id defaults to bridge.device_id with other characters as '_'. */
static void test_homeassistant_node_id_default(void **state)
{
    (void)state;
    static const struct {
        const char *device_id, *node_id;
    } cases[] = {
        {"wb.bridge", "wb_bridge"},
        {"my-bridge_2", "my-bridge_2"},
        {"b\xc3\xa4r:1", "b__r_1"}, /* each byte of a UTF-8 character */
        {"a123456789b123456789c123456789d123456789e123456789f123456789g123456789",
         "a123456789b123456789c123456789d123456789e123456789f123456789g123"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "bridge: {device_id: \"%s\"}\nhomeassistant: {enabled: true}\n",
                 cases[i].device_id);
        struct config *cfg = NULL;
        struct cfg_errors errs = {0};
        wb_status st = parse_text(text, &cfg, &errs);
        dump(&errs);
        assert_int_equal(st, WB_OK);
        assert_string_equal(cfg->homeassistant.node_id, cases[i].node_id);
        assert_string_equal(cfg->homeassistant.base_topic, cases[i].node_id);
        assert_int_equal(strlen(cfg->homeassistant.node_id) <= 64, 1);
        cfg_free(cfg);
    }
}

/* Every wrong value, each at its position. */
static void test_homeassistant_bad(void **state)
{
    (void)state;
    const char *text =
        "homeassistant:\n"
        "  enabled: yes\n"
        "  discovery_prefix: ha\n"
        "  node_id: bad.node\n"
        "  base_topic: ha/bridge\n"
        "  status_topic: \"ha/#\"\n"
        "  republish_delay_ms: 60001\n"
        "  colour: red\n"
        "devices:\n"
        "  - id: d\n"
        "    state:\n"
        "      - topic: d/b\n"
        "        type: bool\n"
        "        field: b\n"
        "        homeassistant: {state_class: measurement}\n"
        "      - topic: d/s\n"
        "        type: string\n"
        "        field: s\n"
        "        homeassistant: {state_class: total, device_class: Temperature}\n"
        "      - topic: d/i\n"
        "        type: int\n"
        "        field: i\n"
        "        homeassistant: {state_class: average, icon: thermometer, entity_category: "
        "primary}\n"
        "      - topic: d/json\n"
        "        type: json\n"
        "        homeassistant: {device_class: energy}\n"
        "        fields:\n"
        "          f: {path: f, homeassistant: {icon: \"mdi:Thermo\", unit: W}}\n"
        "          g: {path: g, homeassistant: [device_class]}\n"
        "    actions:\n"
        "      reboot: {topic: d/r, homeassistant: {state_class: measurement, icon: \"mdi:\"}}\n"
        "      other: {topic: d/o, homeassistant: {device_class: \"\", entity_category: "
        "Config}}\n";
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(parse_text(text, &cfg, &errs), WB_ERR_CONFIG);
    assert_null(cfg);
    EXPECT(errs, "2:12: enabled must be true or false, got 'yes'");
    EXPECT(errs, "4:12: homeassistant.node_id 'bad.node' must match [A-Za-z0-9_-]{1,64}");
    EXPECT(errs, "5:15: homeassistant.base_topic 'ha/bridge' must not be discovery_prefix 'ha' "
                 "nor under it");
    EXPECT(errs, "6:17: homeassistant.status_topic 'ha/#' must be a valid MQTT topic name "
                 "(non-empty, no wildcards, control characters or non-characters)");
    EXPECT(errs, "7:23: republish_delay_ms must be an integer between 0 and 60000, got '60001'");
    EXPECT(errs, "8:3: unknown key 'colour' in homeassistant");
    EXPECT(errs, "15:38: homeassistant.state_class of field 'b' of device 'd' is only allowed on "
                 "a state binding of type int or float or on a fields entry (this binding's type "
                 "is bool)");
    EXPECT(errs, "19:38: homeassistant.state_class of field 's' of device 'd' is only allowed on "
                 "a state binding of type int or float or on a fields entry (this binding's type "
                 "is string)");
    EXPECT(errs, "19:59: homeassistant.device_class of field 's' of device 'd' must match "
                 "[a-z_]{1,64}, got 'Temperature'");
    EXPECT(errs, "23:38: homeassistant.state_class of field 'i' of device 'd' must be one of "
                 "measurement|total|total_increasing|none, got 'average'");
    EXPECT(errs, "23:53: homeassistant.icon of field 'i' of device 'd' must be PREFIX:NAME, both "
                 "of [a-z0-9-] (such as mdi:thermometer), got 'thermometer'");
    EXPECT(errs, "23:83: homeassistant.entity_category of field 'i' of device 'd' must be config "
                 "or diagnostic, got 'primary'");
    EXPECT(errs, "26:24: homeassistant is not allowed on a state binding of type json: give it to "
                 "a fields entry ({path: ..., homeassistant: ...})");
    EXPECT(errs, "28:46: homeassistant.icon of field 'f' of device 'd' must be PREFIX:NAME, both "
                 "of [a-z0-9-] (such as mdi:thermometer), got 'mdi:Thermo'");
    EXPECT(errs, "28:60: unknown key 'unit' in homeassistant of field 'f' of device 'd'");
    EXPECT(errs, "29:39: homeassistant of field 'g' of device 'd' must be a map, got a list");
    EXPECT(errs, "31:57: homeassistant.state_class is not allowed on action 'reboot' of device "
                 "'d' (only a state field has a state class)");
    EXPECT(errs, "31:76: homeassistant.icon of action 'reboot' of device 'd' must be "
                 "PREFIX:NAME, both of [a-z0-9-] (such as mdi:thermometer), got 'mdi:'");
    EXPECT(errs, "32:57: homeassistant.device_class of action 'other' of device 'd' must match "
                 "[a-z_]{1,64}, got ''");
    EXPECT(errs, "32:78: homeassistant.entity_category of action 'other' of device 'd' must be "
                 "config or diagnostic, got 'Config'");
    assert_int_equal(errs.n, 20);
    cfg_errors_free(&errs);
}

/* The topic rules of discovery_prefix, base_topic and status_topic. */
static void test_homeassistant_topics(void **state)
{
    (void)state;
    static const struct {
        const char *text, *error;
    } cases[] = {
        {"homeassistant: {base_topic: \"wb/+/x\"}\n",
         "1:29: homeassistant.base_topic 'wb/+/x' must not hold the wildcards '+' or '#'"},
        {"homeassistant: {base_topic: \"wb/#\"}\n",
         "1:29: homeassistant.base_topic 'wb/#' must not hold the wildcards '+' or '#'"},
        {"homeassistant: {base_topic: /devices/ha}\n",
         "1:29: homeassistant.base_topic '/devices/ha' must not be inside the Wiren Board tree "
         "/devices/ (nor start with '/')"},
        {"homeassistant: {base_topic: /wb}\n",
         "1:29: homeassistant.base_topic '/wb' must not start with '/'"},
        {"homeassistant: {base_topic: \"wb//x\"}\n",
         "1:29: homeassistant.base_topic 'wb//x' must not have an empty level ('//')"},
        {"homeassistant: {base_topic: \"\"}\n",
         "1:29: homeassistant.base_topic '' must not be empty"},
        {"homeassistant: {base_topic: homeassistant}\n",
         "1:29: homeassistant.base_topic 'homeassistant' must not be discovery_prefix "
         "'homeassistant' nor under it"},
        {"homeassistant: {discovery_prefix: \"+\"}\n",
         "1:35: homeassistant.discovery_prefix '+' must not hold the wildcards '+' or '#'"},
        {"homeassistant: {discovery_prefix: a/b/}\n",
         "1:35: homeassistant.discovery_prefix 'a/b/' must not end with '/'"},
        {"homeassistant: {discovery_prefix: \"a\\tb\"}\n",
         "1:35: homeassistant.discovery_prefix 'a?b' a control character"},
        {"homeassistant: {status_topic: \"\"}\n",
         "1:31: homeassistant.status_topic '' must be a valid MQTT topic name (non-empty, no "
         "wildcards, control characters or non-characters)"},
        {"homeassistant: {node_id: \"\"}\n",
         "1:26: homeassistant.node_id '' must match [A-Za-z0-9_-]{1,64}"},
        {"homeassistant: {node_id: "
         "a123456789b123456789c123456789d123456789e123456789f123456789g1234}\n",
         "1:26: homeassistant.node_id "
         "'a123456789b123456789c123456789d123456789e123456789f123456789g1234' must match "
         "[A-Za-z0-9_-]{1,64}"},
        /* The default base_topic (node_id) under discovery_prefix, when enabled. */
        {"bridge: {device_id: homeassistant}\nhomeassistant: {enabled: true}\n",
         "2:1: homeassistant.base_topic 'homeassistant' (its default, node_id) must not be "
         "discovery_prefix 'homeassistant' nor under it: set base_topic"},
        {"homeassistant: {enabled: true, discovery_prefix: ha, node_id: ha}\n",
         "1:63: homeassistant.base_topic 'ha' (its default, node_id) must not be "
         "discovery_prefix 'ha' nor under it: set base_topic"},
        {"homeassistant: [1]\n", "1:16: homeassistant must be a map, got a list"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *cfg = NULL;
        struct cfg_errors errs = {0};
        assert_int_equal(parse_text(cases[i].text, &cfg, &errs), WB_ERR_CONFIG);
        EXPECT(errs, cases[i].error);
        if (errs.n != 1) {
            dump(&errs);
            fail_msg("case %zu: %zu errors", i, errs.n);
        }
        cfg_errors_free(&errs);
    }
    /* Off, the derived default is not checked: a bridge called
     * homeassistant still loads without the sink. */
    struct config *cfg = NULL;
    struct cfg_errors errs = {0};
    assert_int_equal(parse_text("bridge: {device_id: homeassistant}\n", &cfg, &errs), WB_OK);
    cfg_free(cfg);
    /* Prefix levels that only share a beginning do not overlap. */
    assert_int_equal(
        parse_text("homeassistant: {discovery_prefix: ha, base_topic: hab/x}\n", &cfg, &errs),
        WB_OK);
    cfg_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_mirror_topic),
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values_and_tls),
        cmocka_unit_test(test_tls_files_checked),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_duplicate_device),
        cmocka_unit_test(test_bad_refs),
        cmocka_unit_test(test_bad_when_in_file),
        cmocka_unit_test(test_bad_templates),
        cmocka_unit_test(test_wrong_shapes),
        cmocka_unit_test(test_truncated_inputs),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_condition_good),
        cmocka_unit_test(test_condition_bad),
        cmocka_unit_test(test_all_fixtures_no_leaks),
        cmocka_unit_test(test_many_devices),
        cmocka_unit_test(test_many_devices_errors),
        cmocka_unit_test(test_devices_shapes),
        cmocka_unit_test(test_syntax_error_in_device),
        cmocka_unit_test(test_file_limits),
        cmocka_unit_test(test_load_equals_parse),
        cmocka_unit_test(test_field_specs_good),
        cmocka_unit_test(test_field_specs_bad),
        cmocka_unit_test(test_persistence_backend),
        cmocka_unit_test(test_homeassistant_good),
        cmocka_unit_test(test_homeassistant_node_id_default),
        cmocka_unit_test(test_homeassistant_bad),
        cmocka_unit_test(test_homeassistant_topics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
