import type { Attachment } from 'svelte/attachments'

/**
 * Opens a native <dialog> as a modal while it is mounted (focus is trapped, the page behind is
 * inert) and turns Escape and backdrop clicks into `onclose`, so the owner's state stays the one
 * truth about whether the dialog is shown.
 */
export function modal(onclose: () => void): Attachment<HTMLDialogElement> {
  return (dialog) => {
    const onCancel = (e: Event): void => {
      e.preventDefault()
      onclose()
    }
    const onClick = (e: MouseEvent): void => {
      // A click on the backdrop targets the dialog itself, outside its content box.
      if (e.target !== dialog) return
      const r = dialog.getBoundingClientRect()
      const inside =
        e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom
      if (!inside) onclose()
    }
    dialog.addEventListener('cancel', onCancel)
    dialog.addEventListener('click', onClick)
    if (!dialog.open) dialog.showModal()
    return () => {
      dialog.removeEventListener('cancel', onCancel)
      dialog.removeEventListener('click', onClick)
      if (dialog.open) dialog.close()
    }
  }
}
