#!/bin/sh
# An init that obeys SIGTERM and records the other signals it gets (fwrun
# forwards some; SIGINT it never forwards, so "got INT" means the init was
# reached by something else, a terminal's Ctrl-C say).
for s in USR1 USR2 QUIT CONT WINCH INT; do
  trap "echo got $s" $s
done
trap 'echo got TERM; exit 0' TERM
echo ready
while :; do
  sleep 1 &
  wait $!
done
