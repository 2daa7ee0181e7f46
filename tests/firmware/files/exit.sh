#!/bin/sh
# Exit with the status given.
exit "${1:-0}"
