//! What the mock answers: a provider-neutral [`Plan`] computed from a provider-neutral
//! [`GenRequest`] and the prompt's directives. The API modules translate their requests into a
//! `GenRequest` and render the `Plan` in their own wire format, so both APIs behave the same.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::detrand::{SplitMix, fnv1a};
use super::directives::Directives;
use super::jsonfill;
use super::tokens::text_tokens;

/// Words of the prompt echoed at the start of a reply.
const ECHO_WORDS: usize = 8;
/// Words of a tool result quoted in the follow-up reply (bounded: results are untrusted).
const TOOL_RESULT_WORDS: usize = 512;
const FILLER: [&str; 19] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
];

/// A tool the request offers.
#[derive(Debug, Clone)]
pub(crate) struct ToolSpec {
    pub name: String,
    pub schema: Value,
}

/// How the request constrains tool use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ToolChoice {
    Auto,
    None,
    /// OpenAI `required`, Anthropic `any`.
    Any,
    Named(String),
}

/// Structured-output mode (OpenAI `response_format`).
#[derive(Debug, Clone)]
pub(crate) enum JsonMode {
    Object,
    Schema(Value),
}

/// A generation request, stripped of its wire format.
#[derive(Debug, Clone)]
pub(crate) struct GenRequest {
    pub model: String,
    pub input_tokens: u64,
    /// Text of the last user-authored message: the directives' source and the echoed words.
    pub user_text: String,
    /// Set when the conversation ends with tool results: their text.
    pub tool_result: Option<String>,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: ToolChoice,
    pub parallel_tools: bool,
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub n: usize,
    pub json: Option<JsonMode>,
    /// The request itself asked for extended thinking.
    pub thinking: bool,
}

impl GenRequest {
    pub(crate) fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            input_tokens: 0,
            user_text: String::new(),
            tool_result: None,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            parallel_tools: true,
            max_tokens: None,
            stop: Vec::new(),
            n: 1,
            json: None,
            thinking: false,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Finish {
    Stop,
    Length,
    StopSequence(String),
    ToolCalls,
}

impl Finish {
    pub(crate) fn openai(&self) -> &'static str {
        match self {
            Finish::Stop | Finish::StopSequence(_) => "stop",
            Finish::Length => "length",
            Finish::ToolCalls => "tool_calls",
        }
    }

    pub(crate) fn anthropic(&self) -> &'static str {
        match self {
            Finish::Stop => "end_turn",
            Finish::Length => "max_tokens",
            Finish::StopSequence(_) => "stop_sequence",
            Finish::ToolCalls => "tool_use",
        }
    }

    pub(crate) fn stop_sequence(&self) -> Option<&str> {
        match self {
            Finish::StopSequence(s) => Some(s),
            _ => None,
        }
    }
}

/// A tool call to emit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolCall {
    pub name: String,
    pub input: Value,
    /// `input` as compact JSON text (OpenAI's `arguments`).
    pub arguments: String,
}

impl ToolCall {
    fn new(name: &str, input: Value) -> Self {
        let input = if input.is_object() { input } else { json!({}) };
        Self {
            name: name.to_owned(),
            arguments: input.to_string(),
            input,
        }
    }

    pub(crate) fn tokens(&self) -> u64 {
        text_tokens(&self.name) + text_tokens(&self.arguments)
    }
}

/// The content of one answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// Text as the pieces it streams in; each piece counts as one output token.
    Text(Vec<String>),
    Tools(Vec<ToolCall>),
}

/// One answer (OpenAI choice; Anthropic has exactly one).
#[derive(Debug, Clone)]
pub(crate) struct Choice {
    pub output: Output,
    pub finish: Finish,
}

impl Choice {
    pub(crate) fn tokens(&self) -> u64 {
        match &self.output {
            Output::Text(p) => p.len() as u64,
            Output::Tools(calls) => calls.iter().map(ToolCall::tokens).sum(),
        }
    }

    pub(crate) fn text(&self) -> Option<String> {
        match &self.output {
            Output::Text(p) => Some(p.concat()),
            Output::Tools(_) => None,
        }
    }
}

/// An extended-thinking block.
#[derive(Debug, Clone)]
pub(crate) struct Thinking {
    pub pieces: Vec<String>,
    pub signature: String,
}

/// Everything an API module needs to render the answer.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub choices: Vec<Choice>,
    pub thinking: Option<Thinking>,
    pub input_tokens: u64,
    pub cached_tokens: u64,
}

impl Plan {
    pub(crate) fn thinking_tokens(&self) -> u64 {
        self.thinking.as_ref().map_or(0, |t| t.pieces.len() as u64)
    }

    /// Output tokens billed: all choices plus thinking.
    pub(crate) fn output_tokens(&self) -> u64 {
        self.choices.iter().map(Choice::tokens).sum::<u64>() + self.thinking_tokens()
    }
}

/// Splits `s` into pieces of at most `n` characters (never inside a character).
pub(crate) fn chunk_chars(s: &str, n: usize) -> Vec<String> {
    let n = n.max(1);
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

/// Bound on generated pieces over all choices: requests are untrusted, and `n` × tokens
/// could otherwise allocate without limit.
const MAX_TOTAL_PIECES: usize = 1_000_000;

/// Computes the answer. `stripped` is the user text without its directives.
///
/// Like the real APIs, no choice generates more than `max_tokens`, reasoning included (it
/// counts toward OpenAI's `max_completion_tokens` and Anthropic's `max_tokens`): thinking is
/// cut at the limit and each choice gets what is left, ending with `Finish::Length` when it
/// is cut.
pub(crate) fn plan(req: &GenRequest, d: &Directives, stripped: &str, default_tokens: u32) -> Plan {
    let target = (d.tokens.unwrap_or(default_tokens) as usize).min(MAX_TOTAL_PIECES / req.n.max(1));
    let limit = req
        .max_tokens
        .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let mut thinking = (d.thinking || req.thinking).then(|| thinking(stripped));
    if let Some(t) = &mut thinking {
        t.pieces.truncate(limit);
    }
    let left = limit - thinking.as_ref().map_or(0, |t| t.pieces.len());
    let calls = tool_calls(req, d);
    let choices = (0..req.n.max(1))
        .map(|i| match &calls {
            Some(calls) => tools_choice(calls, left),
            None => text_choice(req, stripped, target, i, left),
        })
        .collect();
    Plan {
        choices,
        thinking,
        input_tokens: req.input_tokens,
        cached_tokens: d.cached.unwrap_or(0).min(req.input_tokens),
    }
}

/// Tool calls within `limit` output tokens: the calls that fit, then as much of the next
/// one as fits (its arguments cut short, as a real API leaves them at `max_tokens`).
fn tools_choice(calls: &[ToolCall], limit: usize) -> Choice {
    let mut left = limit as u64;
    let mut kept = Vec::with_capacity(calls.len());
    for call in calls {
        let tokens = call.tokens();
        if tokens <= left {
            left -= tokens;
            kept.push(call.clone());
            continue;
        }
        let name = text_tokens(&call.name);
        if name <= left {
            let chars = usize::try_from((left - name).saturating_mul(4)).unwrap_or(usize::MAX);
            kept.push(ToolCall {
                name: call.name.clone(),
                input: json!({}),
                arguments: call.arguments.chars().take(chars).collect(),
            });
        }
        let output = if kept.is_empty() {
            Output::Text(Vec::new())
        } else {
            Output::Tools(kept)
        };
        return Choice {
            output,
            finish: Finish::Length,
        };
    }
    Choice {
        output: Output::Tools(kept),
        finish: Finish::ToolCalls,
    }
}

fn tool_calls(req: &GenRequest, d: &Directives) -> Option<Vec<ToolCall>> {
    if req.tools.is_empty() || req.tool_result.is_some() || req.tool_choice == ToolChoice::None {
        return None;
    }
    let mut calls: Vec<ToolCall> = d
        .calls
        .iter()
        .map(|(n, a)| ToolCall::new(n, a.clone()))
        .collect();
    if calls.is_empty() {
        let forced = match &req.tool_choice {
            ToolChoice::Any => req.tools.first(),
            ToolChoice::Named(n) => req.tools.iter().find(|t| &t.name == n),
            ToolChoice::Auto | ToolChoice::None => None,
        };
        if let Some(t) = forced {
            calls.push(ToolCall::new(&t.name, jsonfill::sample(&t.schema)));
        } else if let ToolChoice::Named(n) = &req.tool_choice {
            calls.push(ToolCall::new(n, json!({})));
        }
    }
    if !req.parallel_tools {
        calls.truncate(1);
    }
    (!calls.is_empty()).then_some(calls)
}

fn text_choice(
    req: &GenRequest,
    stripped: &str,
    target: usize,
    index: usize,
    limit: usize,
) -> Choice {
    let mut pieces = reply_pieces(req, stripped, target, index);
    if let Some(mode) = &req.json {
        let value = match mode {
            JsonMode::Object => json!({"reply": pieces.concat().trim()}),
            JsonMode::Schema(schema) => match jsonfill::sample(schema) {
                v @ Value::Object(_) => v,
                other => json!({"value": other}),
            },
        };
        pieces = chunk_chars(&value.to_string(), 4);
    }
    let truncated = pieces.len() > limit;
    pieces.truncate(limit);
    let finish = match cut_at_stop(&mut pieces, &req.stop) {
        Some(seq) => Finish::StopSequence(seq),
        None if truncated => Finish::Length,
        None => Finish::Stop,
    };
    Choice {
        output: Output::Text(pieces),
        finish,
    }
}

fn reply_pieces(req: &GenRequest, stripped: &str, target: usize, index: usize) -> Vec<String> {
    let mut pieces: Vec<String>;
    let mut target = target;
    if let Some(result) = &req.tool_result {
        pieces = vec!["Tool".into(), " said:".into()];
        pieces.extend(
            result
                .split_whitespace()
                .take(TOOL_RESULT_WORDS)
                .map(|w| format!(" {w}")),
        );
        // The quoted result is the point of the reply: never cut it short.
        target = target.max(pieces.len());
    } else {
        pieces = vec!["Mock".into(), " reply".into(), " to:".into()];
        pieces.extend(
            stripped
                .split_whitespace()
                .take(ECHO_WORDS)
                .map(|w| format!(" {w}")),
        );
    }
    pieces.truncate(target);
    let seed = (fnv1a(stripped.as_bytes()) % 1024) as usize + index * 7;
    while pieces.len() < target {
        let w = FILLER[(seed + pieces.len()) % FILLER.len()];
        pieces.push(format!(" {w}"));
    }
    pieces
}

/// Cuts the pieces before the earliest stop sequence; returns the sequence if one was found.
fn cut_at_stop(pieces: &mut Vec<String>, stops: &[String]) -> Option<String> {
    let full = pieces.concat();
    let (pos, seq) = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| full.find(s.as_str()).map(|p| (p, s)))
        .min_by_key(|(p, _)| *p)?;
    let mut kept = Vec::new();
    let mut offset = 0;
    for p in pieces.iter() {
        if offset + p.len() <= pos {
            kept.push(p.clone());
        } else {
            // `pos` is a char boundary of `full` and pieces start on char boundaries, so
            // `pos - offset` is a boundary inside this piece.
            if let Some(head) = p.get(..pos - offset).filter(|h| !h.is_empty()) {
                kept.push(head.to_owned());
            }
            break;
        }
        offset += p.len();
    }
    *pieces = kept;
    Some(seq.clone())
}

fn thinking(stripped: &str) -> Thinking {
    let mut pieces: Vec<String> = ["Let", " me", " think", " about"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    pieces.extend(
        stripped
            .split_whitespace()
            .take(ECHO_WORDS)
            .map(|w| format!(" {w}")),
    );
    pieces.push(" carefully.".into());
    let mut rng = SplitMix::new(fnv1a(pieces.concat().as_bytes()));
    let bytes: Vec<u8> = (0..12).flat_map(|_| rng.next_u64().to_le_bytes()).collect();
    Thinking {
        pieces,
        signature: B64.encode(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::directives::parse;

    fn req(text: &str) -> (GenRequest, Directives, String) {
        let mut r = GenRequest::new("gpt-4o-mini");
        r.user_text = text.to_owned();
        let (d, s) = parse(text);
        (r, d, s)
    }

    #[test]
    fn deterministic_text_of_requested_length() {
        let (r, d, s) = req("Hello there world [mock:tokens 6]");
        let p = plan(&r, &d, &s, 16);
        assert_eq!(
            p.choices[0].text().as_deref(),
            Some("Mock reply to: Hello there world")
        );
        assert_eq!(p.output_tokens(), 6);
        assert_eq!(p.choices[0].finish, Finish::Stop);
        let p2 = plan(&r, &d, &s, 16);
        assert_eq!(p.choices[0].text(), p2.choices[0].text());
        let (r, d, s) = req("x [mock:tokens 30]");
        assert_eq!(plan(&r, &d, &s, 16).output_tokens(), 30);
    }

    #[test]
    fn max_tokens_and_stop() {
        let (mut r, d, s) = req("alpha beta gamma");
        r.max_tokens = Some(4);
        let p = plan(&r, &d, &s, 16);
        assert_eq!(p.choices[0].finish, Finish::Length);
        assert_eq!(p.output_tokens(), 4);
        r.max_tokens = None;
        r.stop = vec!["gam".into(), "zzz".into()];
        let p = plan(&r, &d, &s, 16);
        assert_eq!(p.choices[0].finish, Finish::StopSequence("gam".into()));
        assert_eq!(
            p.choices[0].text().as_deref(),
            Some("Mock reply to: alpha beta ")
        );
        assert_eq!(p.output_tokens(), 6);
    }

    #[test]
    fn max_tokens_bounds_thinking_and_tool_calls() {
        let (mut r, d, s) = req("think about this [mock:thinking] [mock:tokens 50]");
        r.n = 2;
        r.max_tokens = Some(6);
        let p = plan(&r, &d, &s, 16);
        let t = p.thinking_tokens();
        assert!(t > 0 && t <= 6, "{t}");
        for c in &p.choices {
            assert!(c.tokens() <= 6 - t);
            assert_eq!(c.finish, Finish::Length);
        }
        assert!(p.output_tokens() <= 2 * 6);
        // Thinking can use up the whole limit.
        r.max_tokens = Some(2);
        let p = plan(&r, &d, &s, 16);
        assert_eq!(p.thinking_tokens(), 2);
        assert!(
            p.choices
                .iter()
                .all(|c| c.tokens() == 0 && c.finish == Finish::Length)
        );

        let (mut r, d, s) = req(r#"go [mock:call a {"q":"a rather long argument"}] [mock:call b]"#);
        r.tools = vec![
            ToolSpec {
                name: "a".into(),
                schema: json!({}),
            },
            ToolSpec {
                name: "b".into(),
                schema: json!({}),
            },
        ];
        r.max_tokens = Some(100);
        let p = plan(&r, &d, &s, 16);
        assert!(matches!(&p.choices[0].output, Output::Tools(c) if c.len() == 2));
        assert_eq!(p.choices[0].finish, Finish::ToolCalls);
        r.max_tokens = Some(3);
        let p = plan(&r, &d, &s, 16);
        let Output::Tools(calls) = &p.choices[0].output else {
            panic!("a cut call expected")
        };
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].arguments, r#"{"q":"a "#);
        assert_eq!(p.choices[0].finish, Finish::Length);
        assert_eq!(p.output_tokens(), 3);
        r.max_tokens = Some(0);
        let p = plan(&r, &d, &s, 16);
        assert!(matches!(&p.choices[0].output, Output::Text(t) if t.is_empty()));
        assert_eq!(p.output_tokens(), 0);
    }

    #[test]
    fn tools_forced_and_directed() {
        let (mut r, d, s) = req("go [mock:call a {\"x\":1}] [mock:call b]");
        assert!(
            matches!(plan(&r, &d, &s, 16).choices[0].output, Output::Text(_)),
            "no tools offered"
        );
        r.tools = vec![
            ToolSpec {
                name: "a".into(),
                schema: json!({"type":"object","properties":{"q":{"type":"string"}}}),
            },
            ToolSpec {
                name: "b".into(),
                schema: json!({}),
            },
        ];
        let p = plan(&r, &d, &s, 16);
        let Output::Tools(calls) = &p.choices[0].output else {
            panic!("tools expected")
        };
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].arguments, "{\"x\":1}");
        assert_eq!(p.choices[0].finish, Finish::ToolCalls);
        r.parallel_tools = false;
        let p = plan(&r, &d, &s, 16);
        assert!(matches!(&p.choices[0].output, Output::Tools(c) if c.len() == 1));
        let (mut r2, d2, s2) = req("plain");
        r2.tools = r.tools.clone();
        r2.tool_choice = ToolChoice::Named("a".into());
        let p = plan(&r2, &d2, &s2, 16);
        assert!(
            matches!(&p.choices[0].output, Output::Tools(c) if c[0].input == json!({"q":"mock"}))
        );
        r2.tool_result = Some("22 degrees".into());
        let p = plan(&r2, &d2, &s2, 3);
        assert_eq!(
            p.choices[0].text().as_deref(),
            Some("Tool said: 22 degrees")
        );
    }

    #[test]
    fn json_modes_are_valid_json() {
        let (mut r, d, s) = req("give json");
        r.json = Some(JsonMode::Object);
        let t = plan(&r, &d, &s, 16).choices[0].text().unwrap_or_default();
        let v: Value = serde_json::from_str(&t).expect("valid json");
        assert!(
            v["reply"]
                .as_str()
                .is_some_and(|x| x.starts_with("Mock reply to: give json"))
        );
        r.json = Some(JsonMode::Schema(
            json!({"type":"object","properties":{"n":{"type":"integer"}}}),
        ));
        let t = plan(&r, &d, &s, 16).choices[0].text().unwrap_or_default();
        assert_eq!(
            serde_json::from_str::<Value>(&t).ok(),
            Some(json!({"n": 1}))
        );
    }

    #[test]
    fn thinking_and_choices() {
        let (mut r, d, s) = req("think [mock:thinking] [mock:cached 2]");
        r.n = 3;
        r.input_tokens = 10;
        let p = plan(&r, &d, &s, 5);
        assert_eq!(p.choices.len(), 3);
        let t = p.thinking.as_ref().expect("thinking");
        assert!(!t.signature.is_empty());
        assert_eq!(p.output_tokens(), 15 + t.pieces.len() as u64);
        assert_eq!(p.cached_tokens, 2);
    }

    #[test]
    fn chunking_respects_chars() {
        assert_eq!(chunk_chars("héllo", 2), vec!["hé", "ll", "o"]);
        assert!(chunk_chars("", 3).is_empty());
    }
}
