#!/usr/bin/env cwl-runner
# A fork bomb: it never ends by itself.
cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'f() { f | f & }; f; sleep 600']
inputs: []
outputs: []
