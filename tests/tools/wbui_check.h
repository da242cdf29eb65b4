/*
 * wbui_check.h - the wbui validator: what a device publishes, checked
 * against the Wiren Board MQTT conventions v1.4 the way the web UI reads
 * them, plus the value checks a user's input gets in the UI.
 *
 * Each problem is one line "PROBLEM <device>/<control>: <what>" (or
 * "PROBLEM <device>: <what>" for the device's own meta and meta/error).
 * Names are printed with bytes outside printable ASCII replaced by '?'.
 */
#ifndef WBUI_CHECK_H
#define WBUI_CHECK_H

#include <stdio.h>

#include "wbui_model.h"

/* Validates one present device and its controls, printing one line per
 * problem to out. Returns the number of problems. */
int wbui_check_device(const struct wbui_device *d, FILE *out);

/* Whether VALUE is acceptable for a number control: a number, inside the
 * control's min..max (range: 0..10^9 by default) and, when the control has
 * an enum, one of its keys. Returns NULL when acceptable, else a static
 * description of why not. *num receives the number. */
const char *wbui_check_number_input(const struct wbui_control *c, const char *value, double *num);

/* Whether VALUE is one of the enum keys of a text control (any VALUE when
 * there is no enum). */
const char *wbui_check_text_input(const struct wbui_control *c, const char *value);

/* Whether VALUE is "R;G;B" with each part an integer 0..255. */
const char *wbui_check_rgb(const char *value);

#endif
