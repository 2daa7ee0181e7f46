#!/bin/sh
# An init that obeys SIGTERM and records the other signals it gets.
for s in USR1 USR2 QUIT CONT WINCH; do
  trap "echo got $s" $s
done
trap 'echo got TERM; exit 0' TERM
echo ready
while :; do
  sleep 1 &
  wait $!
done
