/** CLIP configuration; defaults are OpenAI's ViT-B/32. */

export interface ClipVisionConfig {
  /** input resolution R (images are R x R) */
  image: number;
  patch: number;
  width: number;
  layers: number;
  heads: number;
  /** MLP hidden size (4 x width in OpenAI's models) */
  mlp: number;
}

export interface ClipTextConfig {
  context: number;
  vocab: number;
  width: number;
  layers: number;
  heads: number;
  mlp: number;
}

export interface ClipConfig {
  /** joint embedding size */
  embed: number;
  vision: ClipVisionConfig;
  text: ClipTextConfig;
  eps: number;
}

export const VIT_B_32: ClipConfig = {
  embed: 512,
  vision: { image: 224, patch: 32, width: 768, layers: 12, heads: 12, mlp: 3072 },
  text: { context: 77, vocab: 49408, width: 512, layers: 12, heads: 8, mlp: 2048 },
  eps: 1e-5,
};

function num(c: Record<string, unknown>, key: string, where: string): number {
  const v = c[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${where}: config field '${key}' is missing or not a number`);
  return v;
}

/** From OpenAI's build_model field names (embed_dim, vision_width, ...); vision heads = width / 64 as OpenAI derives them. */
export function clipConfigFromOpenAI(c: Record<string, unknown>, where = 'config'): ClipConfig {
  const vw = num(c, 'vision_width', where);
  const tw = num(c, 'transformer_width', where);
  return {
    embed: num(c, 'embed_dim', where),
    vision: { image: num(c, 'image_resolution', where), patch: num(c, 'vision_patch_size', where), width: vw, layers: num(c, 'vision_layers', where), heads: typeof c.vision_heads === 'number' ? c.vision_heads : vw / 64, mlp: vw * 4 },
    text: { context: num(c, 'context_length', where), vocab: num(c, 'vocab_size', where), width: tw, layers: num(c, 'transformer_layers', where), heads: num(c, 'transformer_heads', where), mlp: tw * 4 },
    eps: 1e-5,
  };
}

/** From a Hugging Face CLIPConfig (config.json of openai/clip-vit-base-patch32). */
export function clipConfigFromHF(c: Record<string, unknown>, where = 'config.json'): ClipConfig {
  const v = (c.vision_config ?? {}) as Record<string, unknown>;
  const t = (c.text_config ?? {}) as Record<string, unknown>;
  for (const [sub, name] of [[v, 'vision'], [t, 'text']] as const) {
    const act = sub.hidden_act ?? 'quick_gelu';
    if (act !== 'quick_gelu') throw new Error(`${where}: ${name}_config.hidden_act '${String(act)}' is not supported (CLIP uses quick_gelu)`);
  }
  const pick = (o: Record<string, unknown>, k: string, d: number) => (typeof o[k] === 'number' ? (o[k] as number) : d);
  const d = VIT_B_32;
  return {
    embed: pick(c, 'projection_dim', d.embed),
    vision: {
      image: pick(v, 'image_size', d.vision.image), patch: pick(v, 'patch_size', d.vision.patch), width: pick(v, 'hidden_size', d.vision.width),
      layers: pick(v, 'num_hidden_layers', d.vision.layers), heads: pick(v, 'num_attention_heads', d.vision.heads), mlp: pick(v, 'intermediate_size', d.vision.mlp),
    },
    text: {
      context: pick(t, 'max_position_embeddings', d.text.context), vocab: pick(t, 'vocab_size', d.text.vocab), width: pick(t, 'hidden_size', d.text.width),
      layers: pick(t, 'num_hidden_layers', d.text.layers), heads: pick(t, 'num_attention_heads', d.text.heads), mlp: pick(t, 'intermediate_size', d.text.mlp),
    },
    eps: pick(v, 'layer_norm_eps', 1e-5),
  };
}

/** Read a config in either layout: HF (vision_config/text_config) or OpenAI (embed_dim...) or ours (embed/vision/text). */
export function clipConfigFrom(c: Record<string, unknown>, where = 'config'): ClipConfig {
  if ('vision_config' in c || 'text_config' in c) return clipConfigFromHF(c, where);
  if ('embed_dim' in c) return clipConfigFromOpenAI(c, where);
  if ('embed' in c && 'vision' in c && 'text' in c) return c as unknown as ClipConfig;
  throw new Error(`${where}: not a CLIP config (expected HF vision_config/text_config, OpenAI embed_dim, or dpad embed/vision/text)`);
}
