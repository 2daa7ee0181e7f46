#!/bin/sh
# Boots again and again under fwrun --on-reboot restart, each boot with heavy
# console output and many refused calls, for the memory test in
# tests/load.rs. The boot count survives the reboots in the writable layer.
# CYCLES (from the test) is how many boots; the last says "done" and stays
# up until it gets SIGTERM.
n=$(( $(cat /var/cycles 2>/dev/null || echo 0) + 1 ))
echo "$n" > /var/cycles
# 2000 lines of 100 characters for the console.
yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 | head -n 2000
# 100 mounts fwrun refuses (sysfs outside /sys).
mkdir -p /mnt/p
i=0
while [ $i -lt 100 ]; do
  mount -t sysfs sysfs /mnt/p 2>/dev/null
  i=$((i + 1))
done
echo "cycle $n"
if [ "$n" -ge "${CYCLES:?}" ]; then
  trap 'exit 0' TERM
  echo done
  while :; do
    sleep 1 &
    wait $!
  done
fi
reboot -f
