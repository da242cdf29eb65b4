#!/usr/bin/python3
"""hacheck.py - plays Home Assistant's MQTT integration for the tests.

Reads device-based discovery configs (<prefix>/device/<node_id>/<object_id>/config),
follows the state, availability and json_attributes topics they name, renders
the templates with jinja2 as Home Assistant does and applies the platforms'
semantics. Modes: dump, check, command, wait, birth (see usage()).

Run with Debian's /usr/bin/python3 (python3-paho-mqtt, python3-jinja2).
Exit codes: 0 ok, 1 problems / timeout / refused, 2 usage error or no broker.
"""

import argparse
import json
import math
import os
import random
import re
import sys
import threading
import time

try:
    import jinja2
    import jinja2.sandbox
    import paho.mqtt.client as mqtt
except ImportError as e:  # pragma: no cover
    print(f"hacheck: {e} (run with /usr/bin/python3; apt-get install python3-paho-mqtt python3-jinja2)",
          file=sys.stderr)
    sys.exit(2)

PLATFORMS = ("sensor", "binary_sensor", "switch", "number", "select", "button", "text")

# Home Assistant's abbreviations (homeassistant/components/mqtt/abbreviations.py),
# the ones the platforms above can use.
ABBREVIATIONS = {
    "act_t": "action_topic", "act_tpl": "action_template",
    "atype": "automation_type", "aux_cmd_t": "aux_command_topic",
    "avty": "availability", "avty_mode": "availability_mode",
    "avty_t": "availability_topic", "avty_tpl": "availability_template",
    "cmd_t": "command_topic", "cmd_tpl": "command_template",
    "cmps": "components", "dev": "device", "dev_cla": "device_class",
    "def_ent_id": "default_entity_id",
    "e": "encoding", "en": "enabled_by_default", "ent_cat": "entity_category",
    "ent_pic": "entity_picture", "exp_aft": "expire_after",
    "frc_upd": "force_update", "ic": "icon", "json_attr": "json_attributes",
    "json_attr_t": "json_attributes_topic", "json_attr_tpl": "json_attributes_template",
    "max": "max", "min": "min", "mode": "mode", "name": "name",
    "o": "origin", "obj_id": "object_id", "off_dly": "off_delay",
    "opt": "optimistic", "ops": "options", "p": "platform", "pat": "pattern",
    "pl": "payload", "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available", "pl_off": "payload_off",
    "pl_on": "payload_on", "pl_prs": "payload_press", "pl_rst": "payload_reset",
    "qos": "qos", "ret": "retain", "stat_cla": "state_class",
    "stat_off": "state_off", "stat_on": "state_on", "stat_t": "state_topic",
    "stat_tpl": "state_template", "stat_val_tpl": "state_value_template",
    "step": "step", "sug_dsp_prc": "suggested_display_precision",
    "t": "topic", "uniq_id": "unique_id", "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template", "l_ver_t": "latest_version_topic",
}
DEVICE_ABBREVIATIONS = {
    "cns": "connections", "ids": "identifiers", "name": "name",
    "mf": "manufacturer", "mdl": "model", "mdl_id": "model_id",
    "hw": "hw_version", "sw": "sw_version", "sa": "suggested_area",
    "sn": "serial_number", "cu": "configuration_url", "via_device": "via_device",
}
ORIGIN_ABBREVIATIONS = {"name": "name", "sw": "sw_version", "url": "support_url"}

STATE_CLASSES = {"measurement", "total", "total_increasing", "measurement_angle"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
# Home Assistant's device classes (SensorDeviceClass, BinarySensorDeviceClass,
# ButtonDeviceClass, NumberDeviceClass, SwitchDeviceClass), 2025.
_NUMERIC_CLASSES = {
    "absolute_humidity", "apparent_power", "aqi", "area", "atmospheric_pressure",
    "battery", "blood_glucose_concentration", "carbon_dioxide", "carbon_monoxide",
    "conductivity", "current", "data_rate", "data_size", "distance", "duration",
    "energy", "energy_distance", "energy_storage", "frequency", "gas", "humidity",
    "illuminance", "irradiance", "moisture", "monetary", "nitrogen_dioxide",
    "nitrogen_monoxide", "nitrous_oxide", "ozone", "ph", "pm1", "pm10", "pm25",
    "pm4", "power", "power_factor", "precipitation", "precipitation_intensity",
    "pressure", "reactive_energy", "reactive_power", "signal_strength",
    "sound_pressure", "speed", "sulphur_dioxide", "temperature",
    "volatile_organic_compounds", "volatile_organic_compounds_parts", "voltage",
    "volume", "volume_flow_rate", "volume_storage", "water", "weight",
    "wind_direction", "wind_speed",
}
DEVICE_CLASSES = {
    "sensor": _NUMERIC_CLASSES | {"date", "enum", "timestamp"},
    "number": set(_NUMERIC_CLASSES),
    "binary_sensor": {
        "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity",
        "door", "garage_door", "gas", "heat", "light", "lock", "moisture", "motion",
        "moving", "occupancy", "opening", "plug", "power", "presence", "problem",
        "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window",
    },
    "button": {"identify", "restart", "update"},
    "switch": {"outlet", "switch"},
}
# Sensor device classes that only allow some state classes (DEVICE_CLASS_STATE_CLASSES).
DEVICE_CLASS_STATE_CLASSES = {
    "energy": {"total", "total_increasing"},
    "gas": {"total", "total_increasing"},
    "water": {"total", "total_increasing"},
    "energy_storage": {"measurement"},
    "volume_storage": {"measurement"},
    "monetary": {"total"},
    "wind_direction": {"measurement_angle"},
    "date": set(), "enum": set(), "timestamp": set(),
}
TOPIC_KEYS = ("state_topic", "command_topic", "json_attributes_topic", "availability_topic")
OBJECT_ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
PAYLOAD_NONE = "None"


# ---- abbreviations ---------------------------------------------------------
def expand(d, table=ABBREVIATIONS):
    return {table.get(k, k): v for k, v in d.items()}


def _subst(v, base):
    if v.startswith("~"):
        return base + v[1:]
    if v.endswith("~"):
        return v[:-1] + base
    return v


def subst_base(c, base):
    """The base topic "~" at the start or the end of a topic option (HA)."""
    if not isinstance(base, str):
        return
    for k, v in list(c.items()):
        if (k == "topic" or k.endswith("_topic")) and isinstance(v, str):
            c[k] = _subst(v, base)
    for a in c.get("availability") or []:
        if isinstance(a, dict) and isinstance(a.get("topic"), str):
            a["topic"] = _subst(a["topic"], base)


def expand_component(c, base=None):
    if not isinstance(c, dict):
        return c
    c = expand(c)
    if isinstance(c.get("device"), dict):
        c["device"] = expand(c["device"], DEVICE_ABBREVIATIONS)
    if isinstance(c.get("origin"), dict):
        c["origin"] = expand(c["origin"], ORIGIN_ABBREVIATIONS)
    if isinstance(c.get("availability"), list):
        c["availability"] = [expand(a) if isinstance(a, dict) else a for a in c["availability"]]
    base = c.pop("~", base)
    subst_base(c, base)
    return c


def expand_device_payload(p):
    """The device payload with Home Assistant's abbreviations written out."""
    p = expand(p)
    if isinstance(p.get("device"), dict):
        p["device"] = expand(p["device"], DEVICE_ABBREVIATIONS)
    if isinstance(p.get("origin"), dict):
        p["origin"] = expand(p["origin"], ORIGIN_ABBREVIATIONS)
    if isinstance(p.get("availability"), list):
        p["availability"] = [expand(a) if isinstance(a, dict) else a for a in p["availability"]]
    base = p.get("~")
    subst_base(p, base)
    if isinstance(p.get("components"), dict):
        p["components"] = {k: expand_component(v, base) for k, v in p["components"].items()}
    return p


def shared_options(p):
    """Options outside dev/o/cmps are shared by every component (HA)."""
    return {k: v for k, v in p.items() if k not in ("device", "origin", "components", "~", "qos")}


# ---- templates ------------------------------------------------------------
def _ha_float(v, default=None):
    try:
        return float(v)
    except (TypeError, ValueError):
        if default is None:
            raise ValueError(f"float got invalid input '{v}' when rendering template")
        return default


def _ha_int(v, default=None, base=10):
    try:
        if isinstance(v, str):
            return int(v, base)
        return int(v)
    except (TypeError, ValueError):
        try:
            return int(float(v))
        except (TypeError, ValueError):
            if default is None:
                raise ValueError(f"int got invalid input '{v}' when rendering template")
            return default


def _is_number(v):
    try:
        f = float(v)
        return not (math.isnan(f) or math.isinf(f))
    except (TypeError, ValueError):
        return False


def _iif(v, if_true=True, if_false=False, if_none=None):
    if v is None and if_none is not None:
        return if_none
    return if_true if v else if_false


ENV = jinja2.sandbox.ImmutableSandboxedEnvironment()
ENV.filters.update(float=_ha_float, int=_ha_int, is_number=_is_number, iif=_iif,
                   to_json=lambda v, **kw: json.dumps(v, **kw), from_json=json.loads,
                   bool=lambda v, d=None: str(v).lower() in ("1", "true", "yes", "on", "enable"))
ENV.globals.update(float=_ha_float, int=_ha_int, is_number=_is_number, iif=_iif,
                   bool=lambda v, d=None: str(v).lower() in ("1", "true", "yes", "on", "enable"))
ENV.tests.update(is_number=_is_number)


def render(template, payload, extra=None):
    """(result text, error) rendering TEMPLATE as HA does with value/value_json."""
    try:
        t = ENV.from_string(template)
    except jinja2.TemplateError as e:
        return None, f"template {template!r} does not compile: {e}"
    variables = {"value": payload}
    try:
        variables["value_json"] = json.loads(payload)
    except (ValueError, TypeError):
        pass
    if extra:
        variables.update(extra)
    try:
        return str(t.render(**variables)).strip(), None
    except Exception as e:  # jinja2 errors, and those the template's code raises
        return None, f"template {template!r} failed on {payload!r}: {type(e).__name__}: {e}"


def fmt_number(f, step):
    """A number as HA sends it: no '.0' when the step and the value are integral."""
    if float(step).is_integer() and float(f).is_integer():
        return str(int(f))
    return repr(float(f))


# ---- the model ------------------------------------------------------------
class Model:
    def __init__(self, prefix):
        self.prefix = prefix
        self.devices = {}  # topic -> {"object_id", "node_id", "topic", "config", "components"}
        self.removed = []
        self.parse_problems = {}  # topic -> [problem]
        self.sticky = []  # problems that stay (removals done wrong, ...)
        self.messages = {}  # topic -> latest payload text (non-config topics)
        self.avail_seq = {}  # topic -> sequence number of its latest message
        self.seq = 0
        self.changes = 0

    # A message on a discovery topic.
    def on_config(self, topic, payload):
        parts = topic.split("/")
        old = self.devices.get(topic)
        self.parse_problems.pop(topic, None)
        if payload == b"":
            if old:
                self.removed.append({"kind": "device", "object_id": old["object_id"], "topic": topic,
                                     "unique_ids": sorted(uid for uid in (c.get("unique_id")
                                                          for c in old["components"].values()) if uid)})
                del self.devices[topic]
            return
        probs = []
        self.parse_problems[topic] = probs
        if len(parts) != 5 or parts[1] != "device":
            probs.append(f"{topic}: not a device-based discovery topic "
                         f"({self.prefix}/device/<node_id>/<object_id>/config)")
            return
        node_id, object_id = parts[2], parts[3]
        for what, v in (("node_id", node_id), ("object_id", object_id)):
            if not OBJECT_ID_RE.match(v):
                probs.append(f"{topic}: {what} {v!r} is not [a-zA-Z0-9_-]+")
        try:
            raw = json.loads(payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            probs.append(f"{topic}: payload is not JSON: {e}")
            return
        if not isinstance(raw, dict):
            probs.append(f"{topic}: payload is not a JSON object")
            return
        cfg = expand_device_payload(raw)
        shared = shared_options(cfg)
        comps = {}
        removed_now = []
        for key, c in (cfg.get("components") or {}).items() if isinstance(cfg.get("components"), dict) else []:
            if not isinstance(c, dict):
                comps[key] = c
                continue
            if set(c) == {"platform"}:
                prev = old["components"].get(key) if old else None
                removed_now.append(key)
                self.removed.append({"kind": "component", "object_id": object_id, "topic": topic,
                                     "component": key, "platform": c["platform"],
                                     "unique_id": prev.get("unique_id") if isinstance(prev, dict) else None})
                continue
            merged = dict(shared)
            merged.update(c)
            comps[key] = merged
        if old:
            for key, c in old["components"].items():
                if key not in comps and key not in removed_now:
                    # HA keeps an entity whose component just vanished from the config.
                    comps[key] = c
                    self.sticky.append(f"{topic}: component {key!r} vanished from the config "
                                       f"without a {{\"p\": ...}} removal: Home Assistant keeps the entity")
        self.devices[topic] = {"object_id": object_id, "node_id": node_id, "topic": topic,
                               "config": cfg, "components": comps}

    def on_message(self, topic, payload):
        self.changes += 1
        if topic.startswith(self.prefix + "/") and topic.endswith("/config"):
            self.on_config(topic, payload)
            return
        self.seq += 1
        self.messages[topic] = payload.decode("utf-8", "replace")
        self.avail_seq[topic] = self.seq

    def components(self):
        for dev in self.devices.values():
            for key, c in dev["components"].items():
                yield dev, key, c

    def topics_wanted(self):
        want = set()
        for _dev, _key, c in self.components():
            if not isinstance(c, dict):
                continue
            for k in ("state_topic", "json_attributes_topic", "availability_topic"):
                if valid_topic(c.get(k)):
                    want.add(c[k])
            for a in avail_list(c):
                if valid_topic(a.get("topic")):
                    want.add(a["topic"])
        return want

    # ---- an entity's state, availability and attributes ----
    def entity(self, c, probs, where):
        p = c.get("platform")
        ent = {"platform": p, "name": c.get("name"), "state": None, "available": True,
               "attributes": None, "raw_state_payload": None}
        # availability
        al = avail_list(c)
        if al:
            mode = c.get("availability_mode", "latest")
            flags = []
            latest = (0, False)
            for a in al:
                t = a.get("topic")
                on = str(a.get("payload_available", "online"))
                off = str(a.get("payload_not_available", "offline"))
                v = self.messages.get(t)
                state = False
                if v is not None:
                    tpl = a.get("value_template") or c.get("availability_template")
                    if tpl:
                        v, err = render(tpl, v)
                        if err:
                            probs.append(f"{where}: availability_template: {err}")
                            v = None
                    if v == on:
                        state = True
                    elif v == off:
                        state = False
                    elif v is not None:
                        probs.append(f"{where}: availability {t!r} payload {v!r} is neither {on!r} nor {off!r}")
                    if v in (on, off) and self.avail_seq.get(t, 0) > latest[0]:
                        latest = (self.avail_seq[t], state)
                flags.append(state)
            if mode == "all":
                ent["available"] = all(flags)
            elif mode == "any":
                ent["available"] = any(flags)
            else:
                ent["available"] = latest[1]
        # attributes
        at = c.get("json_attributes_topic")
        if at and at in self.messages:
            v = self.messages[at]
            if c.get("json_attributes_template"):
                v, err = render(c["json_attributes_template"], v)
                if err:
                    probs.append(f"{where}: json_attributes_template: {err}")
                    v = None
            if v is not None:
                try:
                    a = json.loads(v)
                    if isinstance(a, dict):
                        ent["attributes"] = a
                    else:
                        probs.append(f"{where}: json attributes {v!r} are not a JSON object")
                except ValueError:
                    probs.append(f"{where}: json attributes {v!r} are not JSON")
        # state
        st = c.get("state_topic")
        if p == "button" or not st or st not in self.messages:
            return ent
        raw = self.messages[st]
        ent["raw_state_payload"] = raw
        v = raw
        if c.get("value_template"):
            v, err = render(c["value_template"], raw)
            if err and "does not compile" in err:
                return ent  # validate_component reports it
            if err:
                probs.append(f"{where}: value_template: {err}")
                return ent
        ent["rendered"] = v
        ent["state"] = self.platform_state(p, c, v, probs, where)
        return ent

    def platform_state(self, p, c, v, probs, where):
        if v == PAYLOAD_NONE:
            return None
        if p == "sensor":
            if v == "" :
                return None
            numeric = "unit_of_measurement" in c or "state_class" in c
            if numeric:
                if v == "unknown":
                    return None
                try:
                    float(v)
                except ValueError:
                    probs.append(f"{where}: sensor state {v!r} is not numeric "
                                 f"(it has a unit_of_measurement or a state_class)")
                    return None
            return v
        if p in ("binary_sensor", "switch"):
            pon = str(c.get("payload_on", "ON"))
            poff = str(c.get("payload_off", "OFF"))
            if p == "switch":
                pon = str(c.get("state_on", pon))
                poff = str(c.get("state_off", poff))
            if v == pon:
                return "on"
            if v == poff:
                return "off"
            if v == "":
                return None
            names = ("state_on", "state_off") if p == "switch" else ("payload_on", "payload_off")
            probs.append(f"{where}: {p} state {v!r} matches neither {names[0]} {pon!r} nor {names[1]} {poff!r}")
            return None
        if p == "select":
            opts = c.get("options") or []
            if v not in [str(o) for o in opts]:
                probs.append(f"{where}: select state {v!r} is not one of the options {opts!r}")
                return None
            return v
        if p == "number":
            try:
                f = float(v)
            except ValueError:
                probs.append(f"{where}: number state {v!r} is not a number")
                return None
            lo, hi = num(c.get("min"), 1), num(c.get("max"), 100)
            if lo is not None and hi is not None and not (lo <= f <= hi):
                probs.append(f"{where}: number state {v!r} is outside {c.get('min', 1)}..{c.get('max', 100)}")
                return None
            return v
        if p == "text":
            lo, hi = num(c.get("min"), 0), num(c.get("max"), 255)
            if lo is not None and hi is not None and not (lo <= len(v) <= hi):
                probs.append(f"{where}: text state of {len(v)} characters is outside {lo:g}..{hi:g}")
                return None
            if isinstance(c.get("pattern"), str):
                try:
                    if not re.fullmatch(c["pattern"], v):
                        probs.append(f"{where}: text state {v!r} does not match the pattern {c['pattern']!r}")
                        return None
                except re.error:
                    pass
            return v
        return v

    def snapshot(self):
        """(dump dict, problems list)."""
        probs = []
        for t in sorted(self.parse_problems):
            probs.extend(self.parse_problems[t])
        probs.extend(self.sticky)
        seen_uid = {}
        out = {}
        for topic in sorted(self.devices):
            dev = self.devices[topic]
            probs.extend(validate_device(dev))
            ents = {}
            for key, c in dev["components"].items():
                where = f"{dev['object_id']}/{key}"
                if not isinstance(c, dict):
                    continue
                probs.extend(validate_component(c, where))
                uid = c.get("unique_id")
                if uid is None:
                    continue
                uid = str(uid)
                if uid in seen_uid:
                    probs.append(f"{where}: unique_id {uid!r} is also used by {seen_uid[uid]}")
                    continue
                seen_uid[uid] = where
                if c.get("platform") not in PLATFORMS:
                    continue
                ent = self.entity(c, probs, where)
                ent["component"] = key
                ents[uid] = ent
            name = dev["object_id"]
            if name in out:  # the same object_id under two node_ids
                probs.append(f"{topic}: object_id {name!r} is also announced at {out[name]['topic']}")
                name = f"{dev['node_id']}/{name}"
            out[name] = {"topic": topic, "config": dev["config"], "entities": ents}
        probs = list(dict.fromkeys(probs))  # once each
        return {"devices": out, "removed": self.removed, "problems": probs}, probs


def num(v, default):
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        return float(v)
    except ValueError:
        return None


def avail_list(c):
    al = c.get("availability")
    out = []
    if isinstance(al, list):
        out = [a for a in al if isinstance(a, dict)]
    elif isinstance(c.get("availability_topic"), str):
        out = [{"topic": c["availability_topic"],
                "payload_available": c.get("payload_available", "online"),
                "payload_not_available": c.get("payload_not_available", "offline")}]
    return out


def valid_topic(t):
    return (isinstance(t, str) and t != "" and "+" not in t and "#" not in t and "\0" not in t
            and len(t.encode("utf-8")) <= 65535)


def validate_device(dev):
    probs = []
    w = dev["object_id"]
    cfg = dev["config"]
    d = cfg.get("device")
    if not isinstance(d, dict):
        probs.append(f"{w}: no device ('dev') object")
    else:
        ids = d.get("identifiers")
        if isinstance(ids, str):
            ids = [ids]
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            probs.append(f"{w}: device identifiers missing or empty")
        if "name" in d and not isinstance(d["name"], str):
            probs.append(f"{w}: device name is not a string")
    o = cfg.get("origin")
    if not isinstance(o, dict):
        probs.append(f"{w}: no origin ('o') object")
    elif not isinstance(o.get("name"), str) or not o["name"]:
        probs.append(f"{w}: origin has no name")
    comps = cfg.get("components")
    if not isinstance(comps, dict) or not comps:
        probs.append(f"{w}: components ('cmps') missing or empty")
    elif not dev["components"] and all(isinstance(c, dict) and set(c) == {"platform"} for c in comps.values()):
        pass  # everything removed: legal
    for key in dev["components"]:
        if not OBJECT_ID_RE.match(key):
            probs.append(f"{w}: component key {key!r} is not [a-zA-Z0-9_-]+")
    return probs


def validate_component(c, w):
    probs = []
    p = c.get("platform")
    if p not in PLATFORMS:
        probs.append(f"{w}: platform {p!r} is not one of {', '.join(PLATFORMS)}")
        return probs
    if "unique_id" not in c:
        probs.append(f"{w}: no unique_id")
    elif not isinstance(c["unique_id"], str) or not c["unique_id"]:
        probs.append(f"{w}: unique_id is not a non-empty string")
    if p in ("switch", "number", "select", "button", "text") and "command_topic" not in c:
        probs.append(f"{w}: {p} without command_topic")
    if p in ("sensor", "binary_sensor") and "state_topic" not in c:
        probs.append(f"{w}: {p} without state_topic")
    for k in TOPIC_KEYS:
        if k in c and not valid_topic(c[k]):
            probs.append(f"{w}: {k} {c[k]!r} is not a valid MQTT topic")
    for k in ("value_template", "command_template", "json_attributes_template", "availability_template"):
        if k in c:
            if not isinstance(c[k], str):
                probs.append(f"{w}: {k} is not a string")
                continue
            try:
                ENV.from_string(c[k])
            except jinja2.TemplateError as e:
                probs.append(f"{w}: {k} {c[k]!r} does not compile: {e}")
    al = c.get("availability")
    if al is None:
        probs.append(f"{w}: availability missing")
    elif not isinstance(al, list) or not al:
        probs.append(f"{w}: availability is not a non-empty list")
    else:
        for i, a in enumerate(al):
            if not isinstance(a, dict) or "topic" not in a:
                probs.append(f"{w}: availability[{i}] has no topic")
            elif not valid_topic(a["topic"]):
                probs.append(f"{w}: availability[{i}] topic {a['topic']!r} is not a valid MQTT topic")
        mode = c.get("availability_mode", "latest")
        if mode not in ("all", "any", "latest"):
            probs.append(f"{w}: availability_mode {mode!r} is not all, any or latest")
        elif len(al) >= 2 and mode != "all":
            probs.append(f"{w}: {len(al)} availability topics with availability_mode {mode!r}, not 'all'")
    if p == "select":
        ops = c.get("options")
        if not isinstance(ops, list) or not ops:
            probs.append(f"{w}: select without options")
        elif not all(isinstance(o, str) for o in ops):
            probs.append(f"{w}: select options are not all strings")
        elif len(set(ops)) != len(ops):
            probs.append(f"{w}: select options repeat")
    if p == "number":
        lo, hi, st = num(c.get("min"), 1), num(c.get("max"), 100), num(c.get("step"), 1)
        if lo is None or hi is None or st is None:
            probs.append(f"{w}: number min, max or step is not a number")
        else:
            if not lo < hi:
                probs.append(f"{w}: number min {lo:g} is not below max {hi:g}")
            if not st > 0:
                probs.append(f"{w}: number step {st:g} is not above 0")
        if "mode" in c and c["mode"] not in ("auto", "box", "slider"):
            probs.append(f"{w}: number mode {c['mode']!r} is not auto, box or slider")
    if p == "text":
        lo, hi = num(c.get("min"), 0), num(c.get("max"), 255)
        if lo is None or hi is None or not 0 <= lo <= hi:
            probs.append(f"{w}: text min/max are not 0 <= min <= max")
    dc = c.get("device_class")
    if dc is not None:
        allowed = DEVICE_CLASSES.get(p)
        if allowed is None:
            probs.append(f"{w}: {p} has no device classes, got {dc!r}")
        elif dc not in allowed:
            probs.append(f"{w}: device_class {dc!r} is not a {p} device class")
    sc = c.get("state_class")
    if sc is not None:
        if p != "sensor":
            probs.append(f"{w}: state_class on a {p}")
        elif sc not in STATE_CLASSES:
            probs.append(f"{w}: state_class {sc!r} is not one of {', '.join(sorted(STATE_CLASSES))}")
    if p == "sensor" and dc in DEVICE_CLASS_STATE_CLASSES:
        ok = DEVICE_CLASS_STATE_CLASSES[dc]
        if not ok and sc is not None:
            probs.append(f"{w}: device_class {dc!r} takes no state_class, got {sc!r}")
        elif ok and sc not in ok and not (sc is None and dc in ("energy_storage", "volume_storage", "wind_direction")):
            probs.append(f"{w}: device_class {dc!r} needs state_class {' or '.join(sorted(ok))}, got {sc!r}")
    if sc == "measurement_angle" and dc != "wind_direction":
        probs.append(f"{w}: state_class 'measurement_angle' needs device_class 'wind_direction'")
    ec = c.get("entity_category")
    if ec is not None and ec not in ENTITY_CATEGORIES:
        probs.append(f"{w}: entity_category {ec!r} is not config or diagnostic")
    if p in ("sensor", "binary_sensor") and ec == "config":
        probs.append(f"{w}: a {p} cannot have entity_category 'config'")
    return probs


# ---- MQTT -----------------------------------------------------------------
class Session:
    def __init__(self, args):
        self.args = args
        self.model = Model(args.prefix)
        self.cond = threading.Condition()
        self.client_id = f"hacheck-{os.getpid()}-{random.randrange(1 << 30):x}"
        self.sync_topic = f"hacheck/sync/{self.client_id}"
        self.subscribed = set()
        self.pending_subs = {}  # mid -> topics
        self.sync_seen = -1
        self.connected = None  # None waiting, True, or an error text
        self.last_msg = time.monotonic()
        kw = {"client_id": self.client_id, "protocol": mqtt.MQTTv311}
        if hasattr(mqtt, "CallbackAPIVersion"):
            kw["callback_api_version"] = mqtt.CallbackAPIVersion.VERSION1
        self.c = mqtt.Client(**kw)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_disconnect = self._on_disconnect

    def _on_connect(self, _c, _u, _f, rc, *_a):
        with self.cond:
            self.connected = True if rc == 0 else f"connection refused: {mqtt.connack_string(rc)}"
            self.cond.notify_all()

    def _on_disconnect(self, _c, _u, rc, *_a):
        with self.cond:
            if rc != 0 and self.connected is True:
                self.connected = "connection lost"
            self.cond.notify_all()

    def _on_subscribe(self, _c, _u, mid, _q, *_a):
        with self.cond:
            self.pending_subs.pop(mid, None)
            self.cond.notify_all()

    def _on_message(self, _c, _u, msg):
        with self.cond:
            if msg.topic == self.sync_topic:
                try:
                    self.sync_seen = max(self.sync_seen, int(msg.payload))
                except ValueError:
                    pass
            else:
                self.model.on_message(msg.topic, msg.payload)
                self.last_msg = time.monotonic()
            self.cond.notify_all()

    def connect(self, deadline):
        try:
            self.c.connect(self.args.host, self.args.port, keepalive=30)
        except (OSError, ValueError) as e:
            die(2, f"cannot connect to {self.args.host}:{self.args.port}: {e}")
        self.c.loop_start()
        with self.cond:
            while self.connected is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    die(2, f"no answer from the broker at {self.args.host}:{self.args.port}")
                self.cond.wait(left)
            if self.connected is not True:
                die(2, str(self.connected))

    def subscribe(self, topics):
        """Subscribes (QoS 0); returns the mid to wait for, or None."""
        topics = [t for t in topics if t not in self.subscribed]
        if not topics:
            return None
        self.subscribed.update(topics)
        rc, mid = self.c.subscribe([(t, 0) for t in sorted(topics)])
        if rc != mqtt.MQTT_ERR_SUCCESS:
            die(2, f"subscribe failed: {mqtt.error_string(rc)}")
        self.pending_subs[mid] = topics
        return mid

    def settle(self, deadline):
        """Collects until nothing new is wanted, the sync marker came back and
        --quiet-ms passed without a message. False at the deadline."""
        quiet = self.args.quiet_ms / 1000.0
        n = 0
        with self.cond:
            self.subscribe([self.sync_topic, self.model.prefix + "/#"])
            while True:
                # wait for the SUBACKs
                while self.pending_subs:
                    if not self._wait(deadline):
                        return False
                n += 1
                self.c.publish(self.sync_topic, str(n), qos=0)
                while self.sync_seen < n:
                    if not self._wait(deadline):
                        return False
                if self.subscribe(self.model.topics_wanted()) is not None:
                    continue
                # quiet period
                while True:
                    left = self.last_msg + quiet - time.monotonic()
                    if left <= 0:
                        break
                    if time.monotonic() >= deadline:
                        return False
                    self.cond.wait(min(left, max(0.0, deadline - time.monotonic())))
                if self.subscribe(self.model.topics_wanted()) is None:
                    return True

    def _wait(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if self.connected is not True:
            die(2, str(self.connected))
        self.cond.wait(left)
        return True

    def close(self):
        try:
            self.c.disconnect()
            self.c.loop_stop()
        except Exception:
            pass


def die(code, msg):
    print(f"hacheck: {msg}", file=sys.stderr)
    sys.stdout.flush()
    os._exit(code)


def find_entity(model, uid):
    for dev, _key, c in model.components():
        if isinstance(c, dict) and str(c.get("unique_id")) == uid:
            return dev, c
    return None, None


def command_payload(c, value):
    """(payload, error) that HA would publish for VALUE."""
    p = c.get("platform")
    if p == "switch":
        v = value.lower()
        if v in ("on", "true", "1"):
            out = str(c.get("payload_on", "ON"))
        elif v in ("off", "false", "0"):
            out = str(c.get("payload_off", "OFF"))
        else:
            return None, f"switch value {value!r} is not on or off"
    elif p == "button":
        out = str(c.get("payload_press", "PRESS"))
    elif p == "number":
        try:
            f = float(value)
        except ValueError:
            return None, f"{value!r} is not a number"
        if not math.isfinite(f):
            return None, f"{value!r} is not a finite number"
        lo, hi, st = num(c.get("min"), 1), num(c.get("max"), 100), num(c.get("step"), 1)
        if lo is None or hi is None or st is None:
            return None, "the number's min, max or step is not a number"
        if not lo <= f <= hi:
            return None, f"{value} is outside {lo:g}..{hi:g}"
        out = fmt_number(f, st)
    elif p == "select":
        if value not in [str(o) for o in c.get("options") or []]:
            return None, f"{value!r} is not one of the options {c.get('options')!r}"
        out = value
    elif p == "text":
        lo, hi = num(c.get("min"), 0), num(c.get("max"), 255)
        if lo is not None and hi is not None and not lo <= len(value) <= hi:
            return None, f"text of {len(value)} characters is outside {lo:g}..{hi:g}"
        if isinstance(c.get("pattern"), str) and not re.fullmatch(c["pattern"], value):
            return None, f"text {value!r} does not match the pattern {c['pattern']!r}"
        out = value
    else:
        return None, f"a {p} takes no commands"
    if isinstance(c.get("command_template"), str):
        tv = out
        if p == "number":
            tv = float(out) if "." in out else int(out)
        try:
            out = str(ENV.from_string(c["command_template"]).render(value=tv)).strip()
        except Exception as e:
            return None, f"command_template {c['command_template']!r}: {e}"
    return out, None


def main(argv):
    ap = argparse.ArgumentParser(prog="hacheck.py", add_help=False,
                                 description="Plays Home Assistant's MQTT integration (device-based discovery).")
    ap.add_argument("--help", action="help", help="this help")
    ap.add_argument("-h", "--host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    ap.add_argument("-p", "--port", type=int, required=True, help="broker port")
    ap.add_argument("--prefix", default="homeassistant", help="discovery prefix (default homeassistant)")
    ap.add_argument("-t", "--timeout", type=float, default=10.0, help="deadline in seconds (default 10)")
    ap.add_argument("--quiet-ms", type=int, default=300, help="quiet period that ends the collection (default 300)")
    sub = ap.add_subparsers(dest="mode", required=True)
    sub.add_parser("dump", help="prints the devices, entities, removals and problems as JSON")
    pc = sub.add_parser("check", help="prints a PROBLEM line per problem; exit 1 when there is any")
    pc.add_argument("--expect-entities", type=int, help="there must be exactly N entities")
    pm = sub.add_parser("command", help="publishes what HA would for UNIQUE_ID VALUE")
    pm.add_argument("unique_id")
    pm.add_argument("value", nargs="?", default="")
    pw = sub.add_parser("wait", help="waits until UNIQUE_ID has STATE (or --available/--unavailable/--gone)")
    pw.add_argument("unique_id")
    pw.add_argument("state", nargs="?")
    g = pw.add_mutually_exclusive_group()
    g.add_argument("--available", action="store_true")
    g.add_argument("--unavailable", action="store_true")
    g.add_argument("--gone", action="store_true", help="the entity (or the device of that object_id) is removed")
    pb = sub.add_parser("birth", help="publishes HA's birth message (non-retained) and exits")
    pb.add_argument("--status-topic", help="default <prefix>/status")
    pb.add_argument("--payload", default="online")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    if args.mode == "wait" and args.state is None and not (args.available or args.unavailable or args.gone):
        print("hacheck: wait needs STATE, --available, --unavailable or --gone", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536 or args.timeout <= 0 or args.quiet_ms < 0:
        print("hacheck: bad port, timeout or quiet period", file=sys.stderr)
        return 2

    start = time.monotonic()
    deadline = start + args.timeout
    s = Session(args)
    s.connect(deadline)

    if args.mode == "birth":
        topic = args.status_topic or f"{args.prefix}/status"
        info = s.c.publish(topic, args.payload, qos=0, retain=False)
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        s.close()
        return 0 if info.is_published() else 1

    settled = s.settle(deadline)

    if args.mode in ("dump", "check"):
        with s.cond:
            snap, probs = s.model.snapshot()
        s.close()
        if not settled:
            print(f"hacheck: timed out after {args.timeout:g} s before the topics settled", file=sys.stderr)
        if args.mode == "dump":
            json.dump(snap, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
            print()
            return 0 if settled else 1
        n = sum(len(d["entities"]) for d in snap["devices"].values())
        if args.expect_entities is not None and n != args.expect_entities:
            probs.append(f"{n} entities, expected {args.expect_entities}")
        if not settled:
            probs.append(f"timed out after {args.timeout:g} s before the topics settled")
        for p in probs:
            print(f"PROBLEM: {p}")
        return 1 if probs else 0

    if args.mode == "command":
        if not settled:
            s.close()
            print("hacheck: timed out before the topics settled", file=sys.stderr)
            return 1
        with s.cond:
            dev, c = find_entity(s.model, args.unique_id)
        if c is None:
            s.close()
            print(f"hacheck: no entity with unique_id {args.unique_id!r}", file=sys.stderr)
            return 1
        if not valid_topic(c.get("command_topic")):
            s.close()
            print(f"hacheck: {args.unique_id} has no valid command_topic", file=sys.stderr)
            return 1
        payload, err = command_payload(c, args.value)
        if err:
            s.close()
            print(f"hacheck: {args.unique_id}: {err}", file=sys.stderr)
            return 1
        info = s.c.publish(c["command_topic"], payload, qos=0, retain=False)
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        s.close()
        if not info.is_published():
            print("hacheck: the command was not sent", file=sys.stderr)
            return 1
        print(f"{c['command_topic']} {payload}")
        return 0

    # wait
    def cond_holds():
        snap, _ = s.model.snapshot()
        ent = None
        for dev in snap["devices"].values():
            if args.unique_id in dev["entities"]:
                ent = dev["entities"][args.unique_id]
        if args.gone:
            if not settled:
                return False, "not settled"
            return ent is None and args.unique_id not in snap["devices"], "present"
        if ent is None:
            return False, "no such entity"
        if args.available:
            return ent["available"] is True, "unavailable"
        if args.unavailable:
            return ent["available"] is False, "available"
        st = "None" if ent["state"] is None else ent["state"]
        return st == args.state, f"state is {ent['state']!r}"

    last = "not settled"
    ok = False
    told = False
    with s.cond:  # (s.close() joins the network thread: never under the lock)
        while True:
            ok, last = cond_holds()
            if ok or time.monotonic() >= deadline:
                break
            if settled and not told:
                # A test can wait for this line before it makes the change.
                print(f"hacheck: waiting for {args.unique_id} ({last})", file=sys.stderr, flush=True)
                told = True
            s.subscribe(s.model.topics_wanted())
            s.cond.wait(max(0.0, min(0.5, deadline - time.monotonic())))
    s.close()
    if ok:
        return 0
    print(f"hacheck: timed out after {args.timeout:g} s waiting for {args.unique_id}: {last}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
