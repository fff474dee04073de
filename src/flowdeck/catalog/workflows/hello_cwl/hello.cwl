#!/usr/bin/env cwl-runner
# Two steps, coreutils only, no containers, no JavaScript:
# print the lines to a file, then upper-case it.
cwlVersion: v1.2
class: Workflow
doc: Write some lines to a file, then upper-case them.

inputs:
  lines: string[]

outputs:
  greeting:
    type: File
    outputSource: greet/greeting
  shouted:
    type: File
    outputSource: shout/shouted

steps:
  greet:
    in:
      lines: lines
    out: [greeting]
    run:
      class: CommandLineTool
      doc: Print each line (printf reuses its format for every argument).
      baseCommand: [printf, "%s\\n"]
      inputs:
        lines:
          type: string[]
          inputBinding:
            position: 1
      outputs:
        greeting:
          type: stdout
      stdout: greeting.txt

  shout:
    in:
      greeting: greet/greeting
    out: [shouted]
    run:
      class: CommandLineTool
      doc: Upper-case the greeting.
      baseCommand: [tr, "[:lower:]", "[:upper:]"]
      inputs:
        greeting: File
      stdin: $(inputs.greeting.path)
      outputs:
        shouted:
          type: stdout
      stdout: shouted.txt
