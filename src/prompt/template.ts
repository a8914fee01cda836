/** The DPAD prompt (SPEC section 1), verbatim, and the query normalisation. */

export const DPAD_PROMPT =
  "Please find '{Question}' with bbox and points.Compare the difference between objects and find the most closely matched one.Output the thinking process in <think> </think>, final answer in <answer> </answer> and a caption for the bbox content in <caption> </caption> tags.Output the one bbox and points of two largest inscribed circles inside the interested object in JSON format.i.e., <think> thinking process here </think><answer>{\"bbox\": [10,100,200,210], \"points_1\": [30,110], \"points_2\": [35,180]}</answer><caption>a red apple</caption>";

/** The Seg-Zero baseline prompt: the same without the caption. */
export const BASELINE_PROMPT =
  "Please find '{Question}' with bbox and points.Compare the difference between objects and find the most closely matched one.Output the thinking process in <think> </think> and final answer in <answer> </answer> tags.Output the one bbox and points of two largest inscribed circles inside the interested object in JSON format.i.e., <think> thinking process here </think><answer>{\"bbox\": [10,100,200,210], \"points_1\": [30,110], \"points_2\": [35,180]}</answer>";

/**
 * The released query normalisation, `text.lower().strip(".")` (DPAD `rl_dataset.py` for training,
 * `evaluation.py` for evaluation; REFERENCE §2): lower-cased, then dots removed at **both** ends.
 * Only dots: spaces and other punctuation stay ("the cat. " keeps its ". ").
 */
export function normalizeQuery(q: string): string {
  return q.toLowerCase().replace(/^\.+|\.+$/g, '');
}

export function userPrompt(query: string, variant: 'dpad' | 'baseline' = 'dpad'): string {
  // a function replacer: the query is inserted literally, as str.format does ('$&' stays '$&')
  return (variant === 'dpad' ? DPAD_PROMPT : BASELINE_PROMPT).replace('{Question}', () => normalizeQuery(query));
}
