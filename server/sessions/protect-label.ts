// The protection plan kept on the container as a label (`user.clincus.protect`), parsed back as
// hostile input: the label is what resume verifies again and what deletion cleans up.
import Type from 'typebox'
import { Value } from 'typebox/value'
import type { ProtectionPlan } from './protect.ts'

const FoundSchema = Type.Object({
  rel: Type.String(),
  kind: Type.Union([Type.Literal('dir'), Type.Literal('file')]),
  dev: Type.Number(),
  ino: Type.Number(),
})
const PlanSchema = Type.Object({
  devices: Type.Array(
    Type.Object({
      device: Type.String(),
      source: Type.String(),
      path: Type.String(),
      readonly: Type.Boolean(),
      expect: FoundSchema,
    }),
  ),
  created: Type.Array(Type.String()),
  root: FoundSchema,
})

/** The plan as an instance label, for resume (verify again) and deletion (remove what was made). */
export function protectLabel(plan: ProtectionPlan): string {
  return JSON.stringify(plan)
}

export function parseProtectLabel(label: string | undefined): ProtectionPlan | null {
  if (!label) return null
  try {
    const value: unknown = JSON.parse(label)
    return Value.Check(PlanSchema, value) ? value : null
  } catch {
    return null
  }
}
