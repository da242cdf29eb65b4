#!/usr/bin/env bash
# Scenario switches as a Wiren Board user drives them over MQTT: the exact
# sequence of commands, shared devices left alone, skipped `when` steps,
# delays as minimum spacing, a failed step, a rejected concurrent switch,
# shutdown, and a restart that restores without sending anything.
source "$(dirname "$0")/lib.sh"

start_broker
scenario_config "$T_DIR/config.yaml"
# Record every command with its arrival time (ns) from before the bridge starts.
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t 'cmd/#' -F '%U %t %p' >"$T_DIR/cmds.log" 2>/dev/null &
T_PIDS+=($!)
start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
# The recorder is subscribed once a marker published now shows up in it.
recorder_ready() { pub -t cmd/ready -m 1 && grep -q cmd/ready "$T_DIR/cmds.log"; }
check "recorder is subscribed" wait_for 10 recorder_ready
cmds() { grep -v cmd/ready "$T_DIR/cmds.log" | cut -d' ' -f2- | paste -sd'|'; }
status_is() { field_is scenario:last status "\"$1\"" && field_is scenario:last scenario_id "$2"; }
ctl() { mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t "$1" -C 1 -W 2 2>/dev/null; }

pub -t /devices/test_bridge/controls/scenario/on -m movie
check "movie becomes active" wait_for 20 status_is active '"movie"'
check "movie commands in order" test "$(cmds)" = "cmd/tv/power 1|cmd/amp/power 1|cmd/amp/input hdmi1"
# delay_after_ms is a minimum spacing: measured where the bridge sends (the
# command_logs time stamps, ms) and, with a delivery-jitter allowance, where
# the subscriber receives.
gap_sql="select cast(round((julianday(b.created_at) - julianday(a.created_at)) * 86400000) as int)
  from command_logs a, command_logs b where a.device_id='amp' and a.action='power_on'
  and b.device_id='amp' and b.action='set_input' and a.source='scenario' and b.source='scenario'"
gap_ms=$(sql "$T_DIR/db/state.db" "$gap_sql" | head -1)
check "delay_after_ms 300 respected at the sender (gap ${gap_ms} ms, ms time stamps)" test "$gap_ms" -ge 299
t_power=$(grep 'cmd/amp/power 1' "$T_DIR/cmds.log" | cut -d' ' -f1)
t_input=$(grep 'cmd/amp/input hdmi1' "$T_DIR/cmds.log" | cut -d' ' -f1)
rx_ms=$(python3 -c "print(int((float('$t_input') - float('$t_power')) * 1000))")
check "delay seen by the subscriber too (gap ${rx_ms} ms >= 250)" test "$rx_ms" -ge 250
check "bridge scenario control shows movie" wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/test_bridge/controls/scenario -C 1 -W 2)\" = movie ]"
check "optimistic set persisted" field_is device:amp input '"hdmi1"'
check "scenario:last records device states" field_is scenario:last devices.tv.power true

# movie -> music: tv (not in music) is shut down, amp (shared) is not
# power-cycled, and amp's power_on is skipped by its `when`.
pub -t /devices/test_bridge/controls/scenario/on -m music
check "music becomes active" wait_for 20 status_is active '"music"'
check "switch sequence: tv off, shared amp untouched, skipped step absent" \
    test "$(cmds)" = "cmd/tv/power 1|cmd/amp/power 1|cmd/amp/input hdmi1|cmd/tv/power 0|cmd/amp/input optical|cmd/speaker/power 1"
check "skipped step is logged" log_has "step amp/power_on skipped"

# Switching to the active scenario does nothing.
n_before=$(grep -vc cmd/ready "$T_DIR/cmds.log")
pub -t /devices/test_bridge/controls/scenario/on -m music
check "re-switch to the active scenario is a no-op" wait_for 10 log_has "scenario music is already active"
check "no command for the no-op" test "$(grep -vc cmd/ready "$T_DIR/cmds.log")" -eq "$n_before"

# A failed step is recorded and the switch goes on.
pub -t /devices/test_bridge/controls/scenario/on -m broken
check "broken scenario ends failed" wait_for 20 status_is failed '"broken"'
check "failed step recorded in scenario:last" bash -c "'$WBMB_BIN' -c '$T_DIR/config.yaml' state get scenario:last | jq -e '.failed_steps[0].device == \"dimmer\" and (.error | test(\"1 step\"))' >/dev/null"
check "the switch went on after the failed step" \
    test "$(sql "$T_DIR/db/state.db" "select count(*) from command_logs where device_id='speaker' and action='power_on' and status='sent'")" -eq 2
check "failed step is a rejected command_logs row" \
    test "$(sql "$T_DIR/db/state.db" "select count(*) from command_logs where device_id='dimmer' and status='rejected' and source='scenario'")" -eq 1

# A concurrent switch is rejected while `slow` waits in its delay.
pub -t /devices/test_bridge/controls/scenario/on -m slow
check "slow is switching" wait_for 20 status_is switching '"slow"'
pub -t /devices/test_bridge/controls/scenario/on -m movie
check "concurrent switch refused" wait_for 10 log_has "scenario command 'movie' refused: a switch is already running"
check "refusal marks the scenario control meta/error w" wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/test_bridge/controls/scenario/meta/error -C 1 -W 2)\" = w ]"
pub -t st/tv/power -m 1   # the tv is off since the music switch: a real transition
check "messages are applied while the switch waits in its delay" wait_for 10 field_is device:tv power true
check "slow finishes after its delay" wait_for 30 status_is active '"slow"'
# Ordering, not timing: the tv transition was written before the step that
# follows the 3 s delay was sent, i.e. while the switch was waiting.
order_sql="select (select max(ts) from device_state_snapshots where device_id='tv' and state like '%\"power\":true%')
  < (select created_at from command_logs where device_id='speaker' and action='power_off' and source='scenario' order by created_at desc limit 1)"
check "the tv message was applied during the delay, before the next step" \
    test "$(sql "$T_DIR/db/state.db" "$order_sql")" = 1

# Shutdown with "none".
pub -t /devices/test_bridge/controls/scenario/on -m none
check "none shuts the active scenario down" wait_for 20 field_is scenario:last status '"off"'
check "scenario_id is null after shutdown" field_is scenario:last scenario_id null
check "bridge control shows none" wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/test_bridge/controls/scenario -C 1 -W 2)\" = none ]"

# Restart while a scenario is active: nothing is published at start.
pub -t /devices/test_bridge/controls/scenario/on -m movie
check "movie active again" wait_for 20 status_is active '"movie"'
stop_bridge TERM
check "clean stop" test "$BRIDGE_RC" -eq 0
n_before=$(grep -vc cmd/ready "$T_DIR/cmds.log")
start_bridge "$T_DIR/config.yaml"
check "restarted bridge connects" wait_for 30 bash -c "[ \$(grep -c 'MQTT connected' '$T_DIR/bridge.log') -ge 2 ]"
check "restored scenario is shown on the bridge control" wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/test_bridge/controls/scenario -C 1 -W 2)\" = movie ]"
pub -t cmd/ready -m 2
check "recorder saw the marker after the restart" wait_for 10 grep -q "cmd/ready 2" "$T_DIR/cmds.log"
check "no command was sent at start" test "$(grep -vc cmd/ready "$T_DIR/cmds.log")" -eq "$n_before"
check "restore log says no command sent" log_has "restored movie \(status active\); no command sent"

# A process killed during a switch: restored as failed, interrupted.
pub -t /devices/test_bridge/controls/scenario/on -m slow
check "slow switching again" wait_for 20 status_is switching '"slow"'
stop_bridge KILL
start_bridge "$T_DIR/config.yaml"
check "interrupted switch restored as failed" wait_for 30 status_is failed '"slow"'
check "error says the switch was interrupted" bash -c "'$WBMB_BIN' -c '$T_DIR/config.yaml' state get scenario:last | jq -e '.error | test(\"interrupted\")' >/dev/null"
stop_bridge TERM
check "clean stop" test "$BRIDGE_RC" -eq 0
t_done
