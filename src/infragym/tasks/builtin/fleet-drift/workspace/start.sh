#!/bin/sh
# The reconciler every fleet host runs (see the instructions): not implemented yet.
echo "fleet-drift: reconciler not implemented" >&2
exit 1
