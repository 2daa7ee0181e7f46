#!/bin/sh
# An init that notes SIGTERM but does not stop: only SIGKILL ends it.
trap 'echo got TERM' TERM
echo ready
while :; do
  sleep 1 &
  wait $!
done
