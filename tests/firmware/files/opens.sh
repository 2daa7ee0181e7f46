#!/bin/sh
# opens.sh [-w] PATH...: for each path, "PATH opens" when it opens for
# reading (for writing, with -w), else "PATH: REASON" with the reason the
# shell gave. Opens and closes at once: nothing is read or written.
mode=r
[ "$1" = -w ] && { mode=w; shift; }
for p in "$@"; do
  if [ $mode = w ]; then
    err=$( (: >> "$p") 2>&1 )
  else
    err=$( (: < "$p") 2>&1 )
  fi
  if [ $? = 0 ]; then echo "$p opens"; else echo "$p: ${err##*: }"; fi
done
