/**
 * The Qwen2.5-VL chat template, rendered by its own logic (not a Jinja engine):
 * - a default system turn ("You are a helpful assistant.") when the first message is not a system one;
 * - every turn `<|im_start|>{role}\n{content}<|im_end|>\n`, content a string or a list of parts:
 *   an image part (type 'image', or an 'image' / 'image_url' key) -> `<|vision_start|><|image_pad|><|vision_end|>`,
 *   a video part -> the same with `<|video_pad|>`, otherwise a part's 'text' key, anything else nothing;
 * - `add_vision_id` prefixes "Picture n: " / "Video n: "; `add_generation_prompt` appends `<|im_start|>assistant\n`.
 * And the processor's expansion of each `<|image_pad|>` to its image's t*h*w/merge² copies.
 */

export const DEFAULT_SYSTEM_PROMPT = 'You are a helpful assistant.';
export const IMAGE_PAD = '<|image_pad|>';
export const VIDEO_PAD = '<|video_pad|>';

export type ChatPart = { type?: string; text?: unknown; image?: unknown; image_url?: unknown; video?: unknown; [key: string]: unknown };

export interface ChatMessage {
  role: string;
  /** a string, or a list of parts; absent renders as an empty list (Jinja's undefined) */
  content?: string | ChatPart[];
}

export interface ChatOptions {
  addGenerationPrompt?: boolean;
  addVisionId?: boolean;
}

/** Jinja's `{{ x }}` of a JSON value: strings as they are, None/True/False as Python prints them. */
function show(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null) return 'None';
  if (v === undefined) return '';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  return String(v);
}

/** The text the Qwen2.5-VL chat template renders for these messages. */
export function renderChat(messages: ChatMessage[], opts: ChatOptions = {}): string {
  if (!Array.isArray(messages)) throw new Error('qwen chat template: messages is not a list');
  let out = '';
  let images = 0;
  let videos = 0;
  messages.forEach((m, i) => {
    if (!m || typeof m !== 'object') throw new Error(`qwen chat template: messages[${i}] is not an object`);
    if (i === 0 && m.role !== 'system') out += `<|im_start|>system\n${DEFAULT_SYSTEM_PROMPT}<|im_end|>\n`;
    out += `<|im_start|>${show(m.role)}\n`;
    const content = m.content;
    if (typeof content === 'string') {
      out += `${content}<|im_end|>\n`;
      return;
    }
    if (content !== undefined && !Array.isArray(content)) throw new Error(`qwen chat template: messages[${i}].content is neither a string nor a list`);
    (content ?? []).forEach((part, j) => {
      if (!part || typeof part !== 'object') throw new Error(`qwen chat template: messages[${i}].content[${j}] is not an object`);
      if (part.type === 'image' || 'image' in part || 'image_url' in part) {
        images++;
        if (opts.addVisionId) out += `Picture ${images}: `;
        out += `<|vision_start|>${IMAGE_PAD}<|vision_end|>`;
      } else if (part.type === 'video' || 'video' in part) {
        videos++;
        if (opts.addVisionId) out += `Video ${videos}: `;
        out += `<|vision_start|>${VIDEO_PAD}<|vision_end|>`;
      } else if ('text' in part) {
        out += show(part.text);
      }
    });
    out += '<|im_end|>\n';
  });
  if (opts.addGenerationPrompt) out += '<|im_start|>assistant\n';
  return out;
}

/**
 * Replace the k-th `<|image_pad|>` of the text by counts[k] copies (the processor's expansion,
 * counts = t*h*w/merge² per image, in order). More pads than images is an error.
 */
export function expandImagePads(text: string, counts: number[]): string {
  const pieces = text.split(IMAGE_PAD);
  const pads = pieces.length - 1;
  if (pads > counts.length) throw new Error(`qwen processor: the text has ${pads} ${IMAGE_PAD} but only ${counts.length} image(s) were given`);
  let out = pieces[0];
  for (let k = 0; k < pads; k++) out += IMAGE_PAD.repeat(counts[k]) + pieces[k + 1];
  return out;
}
