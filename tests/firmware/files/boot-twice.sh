#!/bin/sh
# Boots, writes a file, reboots; on the second boot finds the file and exits.
if [ -e /var/first-boot ]; then
  echo "second boot, found: $(cat /var/first-boot)"
  exit 0
fi
echo "first boot" > /var/first-boot
echo "first boot, rebooting"
reboot -f
