#!/bin/bash
# usage: run1.sh MOUNT THREADS TAG  -> one restore of the demo dump into MOUNT/dst, prints phases
M=$1; th=$2; S=/tmp/agentB/state-$3
rm -rf $M/dst $S; sync
/tmp/agentB/mcr restore /tmp/agentB/demo/dump $M/dst --threads $th --state-dir $S --quiet >/dev/null 2>&1
python3 -c "import json;r=json.load(open('$S/report.json'));p=r['phases'];print('$M', $th, ' '.join(f'{k}={v:.3f}' for k,v in sorted(p.items()) if not k.startswith('checkpoint')), 'failed', r.get('folder_dates_failed'))"
