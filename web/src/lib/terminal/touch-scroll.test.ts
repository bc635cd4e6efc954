import { describe, expect, it } from 'vitest'
import { swipeScroll } from './touch-scroll.ts'

/** A touch event with the given finger positions (the test DOM has no TouchEvent constructor). */
function touch(type: string, fingers: Array<{ x: number; y: number }>): Event {
  const e = new Event(type, { cancelable: true })
  Object.defineProperty(e, 'touches', {
    value: fingers.map((f) => ({ clientX: f.x, clientY: f.y })),
  })
  return e
}

function setup(): { el: HTMLElement; swipes: number[][]; stop: () => void } {
  const el = document.createElement('div')
  const swipes: number[][] = []
  const stop = swipeScroll(el, (dy, x, y) => swipes.push([dy, x, y]))
  return { el, swipes, stop }
}

describe('swipeScroll', () => {
  it('reports each vertical move of one finger, positive when the finger moves up, and keeps the page still', () => {
    const { el, swipes, stop } = setup()
    el.dispatchEvent(touch('touchstart', [{ x: 10, y: 300 }]))
    const up = touch('touchmove', [{ x: 12, y: 260 }])
    el.dispatchEvent(up)
    el.dispatchEvent(touch('touchmove', [{ x: 12, y: 290 }]))
    expect(swipes).toEqual([
      [40, 12, 260],
      [-30, 12, 290],
    ])
    expect(up.defaultPrevented).toBe(true)
    stop()
  })

  it('leaves sideways moves, two-finger gestures and moves after the finger lifted to the browser', () => {
    const { el, swipes, stop } = setup()
    el.dispatchEvent(touch('touchstart', [{ x: 10, y: 300 }]))
    const sideways = touch('touchmove', [{ x: 60, y: 290 }])
    el.dispatchEvent(sideways)
    expect(sideways.defaultPrevented).toBe(false)
    el.dispatchEvent(
      touch('touchmove', [
        { x: 10, y: 200 },
        { x: 50, y: 200 },
      ]),
    )
    // The pinch ended the gesture: a one-finger move without a new start is not a swipe.
    el.dispatchEvent(touch('touchmove', [{ x: 10, y: 100 }]))
    el.dispatchEvent(touch('touchstart', [{ x: 10, y: 300 }]))
    el.dispatchEvent(touch('touchend', []))
    el.dispatchEvent(touch('touchmove', [{ x: 10, y: 100 }]))
    expect(swipes).toEqual([])
    stop()
  })

  it('removes its listeners when stopped', () => {
    const { el, swipes, stop } = setup()
    stop()
    el.dispatchEvent(touch('touchstart', [{ x: 10, y: 300 }]))
    el.dispatchEvent(touch('touchmove', [{ x: 10, y: 200 }]))
    expect(swipes).toEqual([])
  })
})
