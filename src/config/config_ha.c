/*
 * config_ha.c - the homeassistant: keys of the config (see config_ha.h).
 *
 * The top-level section:
 *   enabled             bool, default false;
 *   discovery_prefix    default "homeassistant"; one or more topic levels:
 *                       a topic name (topic_gate.h) without a leading or
 *                       trailing '/' or an empty level;
 *   node_id             [A-Za-z0-9_-]{1,64}; default bridge.device_id with
 *                       every other character as '_', cut to 64;
 *   base_topic          default node_id; levels as discovery_prefix, not
 *                       under /devices/, and neither discovery_prefix nor
 *                       under it;
 *   status_topic        default "<discovery_prefix>/status"; a topic name;
 *   republish_delay_ms  0..60000, default 1000;
 *   state_interval_ms   0..60000, default 250.
 * Values given are checked whether or not the sink is enabled; a default
 * derived from another key (base_topic from node_id) only when it is.
 *
 * The block of a field or an action: device_class [a-z_]{1,64};
 * state_class measurement|total|total_increasing|none (a number field or
 * a fields entry only, never an action); icon PREFIX:NAME of [a-z0-9-]+;
 * entity_category config|diagnostic.
 */
#include "config/config_ha.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbmb/topic_gate.h"

#define HA_NODE_ID_MAX 64
#define HA_DEVICE_CLASS_MAX 64

#define HF(k, t, m, ...)                                                                           \
    {                                                                                              \
        .key = k, .type = t, .off = offsetof(struct cfg_homeassistant, m), __VA_ARGS__             \
    }
const struct cfgw_field cfgh_top_fields[] = {
    HF("enabled", W_BOOL, enabled, .def_int = 0),
    HF("discovery_prefix", W_STR, discovery_prefix, .def_str = "homeassistant"),
    HF("node_id", W_STR, node_id),
    HF("base_topic", W_STR, base_topic),
    HF("status_topic", W_STR, status_topic),
    HF("republish_delay_ms", W_UINT, republish_delay_ms, .def_int = 1000, .min = 0, .max = 60000),
    HF("state_interval_ms", W_UINT, state_interval_ms, .def_int = 250, .min = 0, .max = 60000),
    {NULL},
};

#define MF(k, m)                                                                                   \
    {                                                                                              \
        .key = k, .type = W_STR, .off = offsetof(struct cfg_ha_meta, m)                            \
    }
static const struct cfgw_field meta_fields[] = {
    MF("device_class", device_class),
    MF("state_class", state_class),
    MF("icon", icon),
    MF("entity_category", entity_category),
    {NULL},
};

static const char *const state_classes[] = {"measurement", "total", "total_increasing", "none",
                                            NULL};
static const char *const entity_categories[] = {"config", "diagnostic", NULL};

/* ---- the top-level section ----------------------------------------------- */

static bool name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
}

/* Why t is not one or more topic levels, NULL when it is. */
static const char *levels_problem(const char *t)
{
    size_t n = strlen(t);
    if (n == 0)
        return "must not be empty";
    if (strpbrk(t, "+#"))
        return "must not hold the wildcards '+' or '#'";
    if (t[0] == '/')
        return "must not start with '/'";
    if (t[n - 1] == '/')
        return "must not end with '/'";
    if (strstr(t, "//"))
        return "must not have an empty level ('//')";
    enum tgate_verdict v = tgate_check(t, n, TGATE_NAME);
    return v == TGATE_OK ? NULL : tgate_strerror(v);
}

/* An error at the node of key in the section, else at the section's key. */
static void err_at(struct cfgw_ctx *c, const struct ydoc_node *sec, const char *key,
                   const struct cfg_mark *mark, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void err_at(struct cfgw_ctx *c, const struct ydoc_node *sec, const char *key,
                   const struct cfg_mark *mark, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const struct ydoc_node *n = sec && sec->kind == YDOC_MAP ? ydoc_map_get(sec, key) : NULL;
    if (n)
        cfgw_error(c, n->line, n->column, "%s", msg);
    else
        cfgw_error(c, mark->line, mark->column, "%s", msg);
}

/* base_topic is discovery_prefix or inside it. */
static bool under_prefix(const char *base, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(base, prefix, n) == 0 && (base[n] == '\0' || base[n] == '/');
}

/* The node_id bridge.device_id gives: other characters as '_', 64 at most. */
static char *node_id_of(struct cfgw_ctx *c, const char *device_id)
{
    char buf[HA_NODE_ID_MAX + 1];
    size_t n = 0;
    for (; device_id[n] && n < HA_NODE_ID_MAX; n++)
        buf[n] = name_char(device_id[n]) ? device_id[n] : '_';
    buf[n] = '\0';
    return cfgw_strdup(c, buf);
}

void cfgh_finish(struct cfgw_ctx *c, const struct ydoc_node *root, struct config *cfg)
{
    struct cfg_homeassistant *h = &cfg->homeassistant;
    const struct ydoc_node *sec = NULL;
    char q[96], q2[96];

    for (size_t i = 0; root && root->kind == YDOC_MAP && i < root->n; i++)
        if (strcmp(root->keys[i]->value, "homeassistant") == 0) {
            h->mark = (struct cfg_mark){root->keys[i]->line, root->keys[i]->column};
            sec = root->items[i];
            break;
        }
    const struct cfg_mark *m = &h->mark;
    bool given_node = h->node_id != NULL, given_base = h->base_topic != NULL;

    if (!h->node_id && cfg->bridge_device_id)
        h->node_id = node_id_of(c, cfg->bridge_device_id);
    if (h->node_id && given_node) {
        size_t n = strlen(h->node_id);
        bool ok = n >= 1 && n <= HA_NODE_ID_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = name_char(h->node_id[i]);
        if (!ok)
            err_at(c, sec, "node_id", m,
                   "homeassistant.node_id '%s' must match [A-Za-z0-9_-]{1,64}",
                   cfgw_safe(h->node_id, q, sizeof(q)));
    }

    const char *why;
    bool prefix_ok = false;
    if (h->discovery_prefix) {
        why = levels_problem(h->discovery_prefix);
        if (why)
            err_at(c, sec, "discovery_prefix", m, "homeassistant.discovery_prefix '%s' %s",
                   cfgw_safe(h->discovery_prefix, q, sizeof(q)), why);
        prefix_ok = !why;
    }

    if (!h->base_topic && h->node_id)
        h->base_topic = cfgw_strdup(c, h->node_id);
    if (h->base_topic && given_base) {
        const char *b = h->base_topic;
        if (strncmp(b, "/devices/", 9) == 0 || strcmp(b, "/devices") == 0)
            why = "must not be inside the Wiren Board tree /devices/ (nor start with '/')";
        else
            why = levels_problem(b);
        if (why)
            err_at(c, sec, "base_topic", m, "homeassistant.base_topic '%s' %s",
                   cfgw_safe(b, q, sizeof(q)), why);
        else if (prefix_ok && under_prefix(b, h->discovery_prefix))
            err_at(c, sec, "base_topic", m,
                   "homeassistant.base_topic '%s' must not be discovery_prefix '%s' nor under it",
                   cfgw_safe(b, q, sizeof(q)), cfgw_safe(h->discovery_prefix, q2, sizeof(q2)));
    } else if (h->base_topic && h->enabled && prefix_ok &&
               under_prefix(h->base_topic, h->discovery_prefix)) {
        /* The default, node_id: the error goes where node_id comes from. */
        err_at(c, sec, given_node ? "node_id" : "base_topic", m,
               "homeassistant.base_topic '%s' (its default, node_id) must not be discovery_prefix "
               "'%s' nor under it: set base_topic",
               cfgw_safe(h->base_topic, q, sizeof(q)),
               cfgw_safe(h->discovery_prefix, q2, sizeof(q2)));
    }

    if (h->status_topic) {
        if (!cfgw_topic_valid(h->status_topic, false))
            err_at(c, sec, "status_topic", m,
                   "homeassistant.status_topic '%s' must be a valid MQTT topic name (non-empty, no "
                   "wildcards, control characters or non-characters)",
                   cfgw_safe(h->status_topic, q, sizeof(q)));
    } else if (h->discovery_prefix) {
        size_t n = strlen(h->discovery_prefix);
        char *s = malloc(n + sizeof("/status"));
        if (!s) {
            c->oom = true;
        } else {
            memcpy(s, h->discovery_prefix, n);
            memcpy(s + n, "/status", sizeof("/status"));
            h->status_topic = s;
        }
    }
}

void cfgh_release(struct cfg_homeassistant *h)
{
    free(h->discovery_prefix);
    free(h->node_id);
    free(h->base_topic);
    free(h->status_topic);
    h->discovery_prefix = h->node_id = h->base_topic = h->status_topic = NULL;
}

/* ---- the block of a field or an action ----------------------------------- */

static bool one_of(const char *s, const char *const *v)
{
    for (; *v; v++)
        if (strcmp(s, *v) == 0)
            return true;
    return false;
}

static bool device_class_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > HA_DEVICE_CLASS_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
            return false;
    return true;
}

/* s[0..n) is [a-z0-9-]+. */
static bool icon_part(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static bool icon_valid(const char *s)
{
    const char *colon = strchr(s, ':');
    return colon && icon_part(s, (size_t)(colon - s)) && icon_part(colon + 1, strlen(colon + 1));
}

static void meta_strings_free(struct cfg_ha_meta *m)
{
    free(m->device_class);
    free(m->state_class);
    free(m->icon);
    free(m->entity_category);
}

struct cfg_ha_meta *cfgh_meta(struct cfgw_ctx *c, const struct ydoc_node *n, enum cfgh_owner owner,
                              enum cfg_value_type type, const char *where)
{
    char what[300], q[96];
    cfgw_fmt(what, sizeof(what), "homeassistant of %s", where);
    struct cfg_ha_meta t;
    memset(&t, 0, sizeof(t));
    cfgw_defaults(c, meta_fields, &t);
    if (!cfgw_map(c, meta_fields, n, &t, what))
        return NULL;
    struct cfg_ha_meta *m = malloc(sizeof(*m));
    if (!m) {
        c->oom = true;
        meta_strings_free(&t);
        return NULL;
    }
    *m = t;
    m->mark = (struct cfg_mark){n->line, n->column};

    if (m->device_class && !device_class_valid(m->device_class))
        cfgw_err_node(c, ydoc_map_get(n, "device_class"),
                      "homeassistant.device_class of %s must match [a-z_]{1,64}, got '%s'", where,
                      cfgw_safe(m->device_class, q, sizeof(q)));
    if (m->state_class) {
        const struct ydoc_node *at = ydoc_map_get(n, "state_class");
        if (owner == CFGH_ACTION)
            cfgw_err_node(c, at,
                          "homeassistant.state_class is not allowed on %s (only a state field "
                          "has a state class)",
                          where);
        else if (type != CFG_T_INT && type != CFG_T_FLOAT && type != CFG_T_JSON)
            cfgw_err_node(c, at,
                          "homeassistant.state_class of %s is only allowed on a state binding of "
                          "type int or float or on a fields entry (this binding's type is %s)",
                          where, cfg_type_name(type));
        else if (!one_of(m->state_class, state_classes))
            cfgw_err_node(c, at,
                          "homeassistant.state_class of %s must be one of "
                          "measurement|total|total_increasing|none, got '%s'",
                          where, cfgw_safe(m->state_class, q, sizeof(q)));
    }
    if (m->icon && !icon_valid(m->icon))
        cfgw_err_node(c, ydoc_map_get(n, "icon"),
                      "homeassistant.icon of %s must be PREFIX:NAME, both of [a-z0-9-] (such as "
                      "mdi:thermometer), got '%s'",
                      where, cfgw_safe(m->icon, q, sizeof(q)));
    if (m->entity_category && !one_of(m->entity_category, entity_categories))
        cfgw_err_node(c, ydoc_map_get(n, "entity_category"),
                      "homeassistant.entity_category of %s must be config or diagnostic, got '%s'",
                      where, cfgw_safe(m->entity_category, q, sizeof(q)));
    return m;
}

void cfgh_meta_free(struct cfg_ha_meta *m)
{
    if (!m)
        return;
    meta_strings_free(m);
    free(m);
}
