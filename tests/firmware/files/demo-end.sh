#!/bin/sh
# The demo's last service: report and power the device off.
echo "demo firmware: up; powering off"
poweroff
