#!/usr/bin/env cwl-runner
# Two steps on coreutils: greet writes a message, shout upper-cases it.
# sleep_seconds makes shout long (cancel tests); fail makes it exit 3 (failure tests).
cwlVersion: v1.2
class: Workflow
inputs:
  message: string
  sleep_seconds: {type: int, default: 0}
  fail: {type: boolean, default: false}
outputs:
  greeting: {type: File, outputSource: greet/out}
  shouted: {type: File, outputSource: shout/out}
steps:
  greet:
    run:
      class: CommandLineTool
      baseCommand: [sh, -c, 'printf "%s\n" "$1" > greeting.txt', greet]
      stdout: greet.out.txt
      stderr: greet.err.txt
      inputs:
        message: {type: string, inputBinding: {position: 1}}
      outputs:
        out: {type: File, outputBinding: {glob: greeting.txt}}
    in: {message: message}
    out: [out]
  shout:
    run:
      class: CommandLineTool
      baseCommand:
        - sh
        - -c
        - |
          sleep "$1"
          if [ "$2" = true ]; then echo "shout failed on purpose" >&2; exit 3; fi
          tr a-z A-Z < "$3" > shouted.txt
        - shout
      stdout: shout.out.txt
      stderr: shout.err.txt
      inputs:
        sleep_seconds: {type: int, inputBinding: {position: 1}}
        fail: {type: string, inputBinding: {position: 2}}
        text: {type: File, inputBinding: {position: 3}}
      outputs:
        out: {type: File, outputBinding: {glob: shouted.txt}}
    in:
      sleep_seconds: sleep_seconds
      fail: {source: fail, valueFrom: '$(self ? "true" : "false")'}
      text: greet/out
    out: [out]
requirements:
  StepInputExpressionRequirement: {}
  InlineJavascriptRequirement: {}
