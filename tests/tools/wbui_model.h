/*
 * wbui_model.h - the device model of the wbui test client: what the
 * Wiren Board web UI (wb-mqtt-homeui) knows after reading /devices/#.
 *
 * The model owns copies of every retained topic of the conventions it
 * understands: per device its meta JSON, meta/error and the legacy
 * meta/name; per control its value, meta JSON, meta/error and the legacy
 * meta subtopics, each kept separately so the checker can compare them.
 * An empty payload deletes the topic from the model, as a removed retained
 * message does. Everything is bounded (WBUI_MAX_*): longer topics, longer
 * payloads and more devices or controls than the caps are counted as
 * dropped and otherwise ignored. Entries are never freed before
 * wbui_model_destroy(): a control whose topics were all deleted stays as an
 * empty slot that counts as absent (and is reused when it comes back).
 *
 * The model is not thread-safe; wbui.c serialises access with a mutex.
 */
#ifndef WBUI_MODEL_H
#define WBUI_MODEL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define WBUI_MAX_DEVICES 2000
#define WBUI_MAX_CONTROLS 10000
#define WBUI_MAX_TOPIC 512
#define WBUI_MAX_NAME 128
#define WBUI_MAX_PAYLOAD 16384

/* The legacy meta subtopics of a control, /devices/D/controls/C/meta/<x>. */
enum wbui_legacy {
    WBUI_L_TYPE,
    WBUI_L_READONLY,
    WBUI_L_ORDER,
    WBUI_L_MIN,
    WBUI_L_MAX,
    WBUI_L_UNITS,
    WBUI_L_PRECISION,
    WBUI_L_NAME,
    WBUI_L_COUNT
};

/* A topic payload as received: raw text (NUL-terminated copy, NULL when
 * absent) and, for the JSON meta topics, its parse (NULL when absent or not
 * valid JSON). */
struct wbui_meta {
    char *raw;
    json_object *json;
};

struct wbui_device;

struct wbui_control {
    char *name;
    struct wbui_device *dev;
    char *value;
    struct wbui_meta meta;
    char *error;
    char *legacy[WBUI_L_COUNT];
};

struct wbui_device {
    char *name;
    struct wbui_meta meta;
    char *error;
    char *legacy_name;
    struct wbui_control **controls;
    size_t ncontrols, cap;
};

struct wbui_stats {
    unsigned long messages; /* every message handed to wbui_model_apply() */
    unsigned long ignored;  /* outside the conventions' topics (e.g. /on) */
    unsigned long dropped;  /* over a cap */
};

/* What kind of value a control type holds, and its UI defaults. */
enum wbui_kind { WBUI_K_BOOL, WBUI_K_NUMBER, WBUI_K_TEXT, WBUI_K_PUSHBUTTON, WBUI_K_RGB };

struct wbui_type {
    const char *name;
    enum wbui_kind kind;
    bool readonly; /* the UI's default when the meta says nothing */
    const char *units;
};

/* The control types of the conventions v1.4 (with the deprecated named
 * value types and wo-switch, which the UI still knows); NULL when unknown. */
const struct wbui_type *wbui_type_find(const char *name);

struct wbui_model;

/* Returns NULL when out of memory. */
struct wbui_model *wbui_model_create(void);
/* Frees the model and everything in it; NULL is a no-op. */
void wbui_model_destroy(struct wbui_model *m);

/* Applies one message (payload need not be NUL-terminated). Returns 1 when
 * the model changed or the topic is one it tracks, 0 when the topic is
 * outside the conventions (ignored) and -1 when it was dropped (cap or out
 * of memory). Never fails on garbage input. */
int wbui_model_apply(struct wbui_model *m, const char *topic, size_t tlen, const void *payload,
                     size_t plen);

const struct wbui_stats *wbui_model_stats(const struct wbui_model *m);

/* Lookups; NULL when unknown or when every topic of it was deleted. */
struct wbui_device *wbui_model_device(const struct wbui_model *m, const char *dev);
struct wbui_control *wbui_model_control(const struct wbui_model *m, const char *dev,
                                        const char *ctl);

/* The present devices, sorted by name, in a malloc'd array the caller frees
 * (NULL with *n = 0 when none or out of memory). */
struct wbui_device **wbui_model_devices(const struct wbui_model *m, size_t *n);
/* The present controls of a device, sorted by name; same ownership. */
struct wbui_control **wbui_device_controls(const struct wbui_device *d, size_t *n);

bool wbui_control_present(const struct wbui_control *c);
bool wbui_device_present(const struct wbui_device *d);

/* The control's type as the UI resolves it: the JSON meta's "type" when it
 * is a string, else the legacy meta/type; NULL when neither. */
const char *wbui_control_type(const struct wbui_control *c);
/* A number from the JSON meta (key) or else the legacy subtopic; false
 * when neither holds a number. */
bool wbui_control_number(const struct wbui_control *c, const char *key, enum wbui_legacy l,
                         double *out);
/* Readonly as the UI resolves it: JSON meta "readonly" when boolean, else
 * legacy meta/readonly "0"/"1", else the default of the type. */
bool wbui_control_readonly(const struct wbui_control *c);
/* The JSON meta's "enum" object, or NULL. */
json_object *wbui_control_enum(const struct wbui_control *c);
/* True when the UI shows the control: it has a type the UI knows and a
 * value; a pushbutton needs no value. */
bool wbui_control_shown(const struct wbui_control *c);
/* True when the control disappeared: no value, no JSON meta and no legacy
 * meta/type (meta/error alone does not keep it). */
bool wbui_control_gone(const struct wbui_control *c);

/* Prints the model (present devices only, or only DEVS when ndevs > 0) as
 * one JSON document; see wbui.c for its shape. Returns 0, or -1 when out of
 * memory. */
int wbui_model_dump(const struct wbui_model *m, const char *const *devs, size_t ndevs, FILE *out);

/* Strict number: the whole string is a finite decimal (or 0x hex) number,
 * no surrounding blanks. */
bool wbui_parse_number(const char *s, double *out);

#endif
