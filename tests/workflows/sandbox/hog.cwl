#!/usr/bin/env cwl-runner
# A memory hog: asks for 4 GiB at once.
cwlVersion: v1.2
class: CommandLineTool
baseCommand: [python3, -c, 'b = bytearray(4 * 1024 ** 3); print(len(b))']
inputs: []
outputs: []
