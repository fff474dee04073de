#!/usr/bin/env cwl-runner
# Runs probe.sh (see there) with the given arguments; its report is the output.
cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh]
inputs:
  args: {type: 'string[]', inputBinding: {position: 1}}
stdout: probe.txt
outputs:
  report: {type: stdout}
