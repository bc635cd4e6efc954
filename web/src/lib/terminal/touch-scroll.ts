// One-finger vertical swipes over a terminal, for phones: xterm.js 6 has no touch scrolling of
// its own (its viewport is no longer a native scrolling element), so a swipe scrolled nothing.

/**
 * Calls `onSwipe(dy, x, y)` for each move of one finger over `el`: `dy` is in CSS pixels, positive
 * when the finger moves up (like a wheel turned down: towards newer lines), `x`/`y` the finger's
 * client position. Moves that are more sideways than vertical are left to the browser, as are
 * gestures of two fingers (pinch zoom). Returns the function that removes the listeners.
 */
export function swipeScroll(
  el: HTMLElement,
  onSwipe: (dy: number, x: number, y: number) => void,
): () => void {
  let last: { x: number; y: number } | null = null

  const start = (e: TouchEvent): void => {
    const t = e.touches.length === 1 ? e.touches[0] : undefined
    last = t ? { x: t.clientX, y: t.clientY } : null
  }
  const move = (e: TouchEvent): void => {
    const t = e.touches.length === 1 ? e.touches[0] : undefined
    if (!last || !t) {
      last = null
      return
    }
    const dx = t.clientX - last.x
    const dy = last.y - t.clientY
    if (Math.abs(dy) < Math.abs(dx)) return
    last = { x: t.clientX, y: t.clientY }
    // The page must not scroll (or pull to refresh) under a swipe the terminal takes.
    if (e.cancelable) e.preventDefault()
    if (dy !== 0) onSwipe(dy, t.clientX, t.clientY)
  }
  const end = (): void => {
    last = null
  }

  el.addEventListener('touchstart', start, { passive: true })
  el.addEventListener('touchmove', move, { passive: false })
  el.addEventListener('touchend', end, { passive: true })
  el.addEventListener('touchcancel', end, { passive: true })
  return () => {
    el.removeEventListener('touchstart', start)
    el.removeEventListener('touchmove', move)
    el.removeEventListener('touchend', end)
    el.removeEventListener('touchcancel', end)
  }
}
