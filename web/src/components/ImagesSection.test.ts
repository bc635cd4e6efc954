import { cleanup, fireEvent, screen, within } from '@testing-library/svelte'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ApiError } from '../lib/api.ts'
import type { ImageInfo } from '../lib/schemas.ts'
import { renderWithApp, testApp } from '../lib/testing/app.ts'
import ImagesSection from './ImagesSection.svelte'

afterEach(() => {
  cleanup()
})

function image(over: Partial<ImageInfo> = {}): ImageInfo {
  return {
    alias: 'clincus',
    fingerprint: '0123456789abcdef0123',
    size_bytes: 1.2 * 1024 ** 3,
    created_at: '2026-11-29T18:00:00Z',
    state: 'ready',
    progress: null,
    step: null,
    tools: { claude: '2.1.197', copilot: '1.0.3', opencode: null, node: '22.21.1' },
    ...over,
  }
}

function setup(list: ImageInfo[] = [image()]) {
  const t = testApp()
  const images = vi.spyOn(t.api, 'images').mockResolvedValue(list)
  const build = vi.spyOn(t.api, 'buildImage').mockResolvedValue(undefined)
  renderWithApp(t.app, ImagesSection, {})
  return { ...t, images, build }
}

async function card(alias = 'clincus'): Promise<HTMLElement> {
  return screen.findByRole('listitem', { name: alias })
}

describe('ImagesSection', () => {
  it('lists each image with a text state, size, date and tool versions', async () => {
    setup([
      image(),
      image({
        alias: 'clincus-test',
        state: 'outdated',
        tools: { claude: null, copilot: null, opencode: null, node: null },
      }),
    ])
    const c = await card()
    expect(within(c).getByTestId('image-state').textContent.trim()).toBe('ready')
    expect(c.textContent).toContain('1.2 GiB')
    expect(c.textContent).toContain('2.1.197')
    expect(c.textContent).toContain('22.21.1')
    expect(c.textContent).toContain('not recorded') // opencode: null
    expect(within(c).getByRole('button', { name: 'Rebuild clincus' })).toBeTruthy()
    expect(within(c).getByRole('button', { name: 'Update agents in clincus' })).toBeTruthy()

    const outdated = await card('clincus-test')
    expect(within(outdated).getByTestId('image-state').textContent.trim()).toBe('outdated')
    expect(outdated.textContent.replace(/\s+/g, ' ')).toContain(
      'The image does not match your [image] config; rebuild to apply.',
    )
  })

  it('Rebuild and Update agents start a build (update: true for the latter)', async () => {
    const { build } = setup()
    const c = await card()
    await fireEvent.click(within(c).getByRole('button', { name: 'Update agents in clincus' }))
    expect(build).toHaveBeenLastCalledWith('clincus', true)
    // Building: both buttons wait for the build to end.
    await vi.waitFor(() => {
      expect(
        within(c).getByRole('button', { name: 'Rebuild clincus' }).hasAttribute('disabled'),
      ).toBe(true)
    })
    expect(within(c).getByRole('progressbar', { name: 'Building clincus' })).toBeTruthy()
  })

  it('moves the progress bar and step from image.building events, then shows the new image', async () => {
    const { app, images } = setup()
    const c = await card()
    expect(within(c).queryByRole('progressbar')).toBeNull()
    app.onEvent({ type: 'image.building', alias: 'clincus', step: 'apt', progress: 0.25 })
    const bar = await within(c).findByRole('progressbar', { name: 'Building clincus' })
    expect(bar.getAttribute('aria-valuenow')).toBe('25')
    expect(bar.getAttribute('aria-valuetext')).toBe('25%, apt')
    expect(within(c).getByTestId('image-state').textContent.trim()).toBe('building')
    app.onEvent({ type: 'image.building', alias: 'clincus', step: 'agents', progress: 0.8 })
    await vi.waitFor(() => {
      expect(bar.getAttribute('aria-valuenow')).toBe('80')
    })
    expect(c.textContent).toContain('80% · agents')

    images.mockResolvedValue([image({ tools: { ...image().tools, claude: '2.2.0' } })])
    app.onEvent({ type: 'image.built', alias: 'clincus' })
    await vi.waitFor(() => {
      expect(within(c).queryByRole('progressbar')).toBeNull()
    })
    expect(c.textContent).toContain('2.2.0')
  })

  it('shows a failed build’s own message in a readable block', async () => {
    const { app } = setup()
    const c = await card()
    const apt =
      'E: Unable to locate package not-a-package\nE: Package lacks an installation candidate'
    app.onEvent({ type: 'image.building', alias: 'clincus', step: 'apt', progress: 0.3 })
    app.onEvent({ type: 'image.failed', alias: 'clincus', error: apt })
    const alert = await within(c).findByRole('alert')
    expect(alert.textContent).toContain('The last build of clincus failed')
    const pre = alert.querySelector('pre')
    expect(pre?.textContent).toBe(apt)
  })

  it('shows the failure the server keeps after a reload, until a build starts', async () => {
    const { app } = setup([image({ error: 'E: Unable to locate package nope' })])
    const c = await card()
    expect(within(c).getByRole('alert').querySelector('pre')?.textContent).toBe(
      'E: Unable to locate package nope',
    )
    app.onEvent({ type: 'image.building', alias: 'clincus', step: 'apt', progress: 0 })
    await vi.waitFor(() => {
      expect(within(c).queryByRole('alert')).toBeNull()
    })
  })

  it('409 on Rebuild says it is already building, in the server words', async () => {
    const { build, app } = setup()
    build.mockRejectedValue(new ApiError(409, 'image_building', 'image clincus is being built'))
    const c = await card()
    await fireEvent.click(within(c).getByRole('button', { name: 'Rebuild clincus' }))
    await within(c).findByText(
      'An image is already building (image clincus is being built); try again when it has finished.',
    )
    expect(app.toasts.items.filter((t) => t.kind === 'error')).toEqual([])
  })

  it('a 409 that is not a running build (no builder) is an error with its message', async () => {
    const { build, app } = setup()
    build.mockRejectedValue(new ApiError(409, 'no_builder', 'image building is not available here'))
    const c = await card()
    await fireEvent.click(within(c).getByRole('button', { name: 'Rebuild clincus' }))
    await within(c).findByText('image building is not available here')
    expect(app.toasts.items.map((t) => t.message)).toEqual([
      'Could not start building clincus: image building is not available here',
    ])
  })

  it('another refusal shows the server message, never [object Object]', async () => {
    const { build, app } = setup()
    build.mockRejectedValue(new ApiError(400, 'unknown_image', 'no image alias "clincus"'))
    const c = await card()
    await fireEvent.click(within(c).getByRole('button', { name: 'Rebuild clincus' }))
    await within(c).findByText('no image alias "clincus"')
    expect(app.toasts.items.map((t) => t.message)).toEqual([
      'Could not start building clincus: no image alias "clincus"',
    ])
  })

  it('says when the list cannot be loaded', async () => {
    const t = testApp()
    vi.spyOn(t.api, 'images').mockRejectedValue(new ApiError(502, 'incus_failed', 'incus down'))
    renderWithApp(t.app, ImagesSection, {})
    expect((await screen.findByRole('alert')).textContent.trim()).toBe(
      'Could not load the images: incus down',
    )
  })
})
