/*
 * The hub's code editor: CodeMirror 6, bundled once by build.mjs into
 * ui/static/vendor/codemirror/hub-editor.js (an IIFE that sets window.HubEditor). The pages
 * load it with a plain <script src="/static/vendor/codemirror/hub-editor.js" defer> before
 * their own script; nothing else is needed (no stylesheet: the editor's styles are
 * constructed stylesheets adopted by the document, allowed by the hub's strict CSP).
 *
 * API
 *
 *   const ed = HubEditor.create(parent, {
 *     doc: "",                 // the initial text
 *     language: "yaml",        // "yaml" | "json" | "expression" (Jinja: {{ ... }}, {% ... %})
 *     label: "Flow YAML",      // the accessible name of the editable region (aria-label)
 *     singleLine: false,       // true: Enter inserts no newline, pasted newlines become spaces
 *     onChange(text) {},       // after each change of the text made by the person
 *     complete: async (text, pos) => ({from, options: [{label, type, detail, info, apply}]}) | null,
 *                              // completion source (pos: offset of the cursor in text);
 *                              // `from` is where the replaced word starts; null: nothing
 *     onBlur() {},             // when the editor loses focus
 *     readOnly: false,
 *     attributes: {},          // more attributes of the editable region (aria-describedby...)
 *   });
 *   ed.getText();              // the current text
 *   ed.setText(text);          // replace the whole text (does not call onChange)
 *   ed.setDiagnostics([{line, column?, from?, to?, message, severity}]);
 *                              // line/column are 1-based; from/to (offsets) win over them;
 *                              // without column the whole line is marked; severity:
 *                              // "error" | "warning" | "info" | "hint" (default "error")
 *   ed.focus(); ed.destroy();
 *   ed.view;                   // the CodeMirror EditorView, for anything else
 *
 *   HubEditor.fromTextarea(textarea, options)
 *                              // progressive enhancement of a <textarea>: the editor is
 *                              // placed after it, the textarea is hidden (kept as the form's
 *                              // field: its value follows every change) and the editor is
 *                              // named by the textarea's <label> (which then labels the
 *                              // editor, not the hidden textarea) unless options.label is
 *                              // given; its aria-describedby and aria-required carry over.
 *                              // Returns the same object as create(), plus .textarea.
 *
 * Keyboard: the usual CodeMirror bindings (undo/redo, search with Mod-f, completion with
 * Ctrl-Space); in a multi-line editor Tab indents: press Escape, then Tab, to move the focus
 * out of the editor (CodeMirror's tab-focus escape).
 */

import { EditorState, Prec, Annotation } from "@codemirror/state";
import {
  EditorView,
  keymap,
  lineNumbers,
  highlightActiveLine,
  highlightActiveLineGutter,
  drawSelection,
  highlightSpecialChars,
  ViewPlugin,
  Decoration,
  MatchDecorator,
} from "@codemirror/view";
import {
  defaultKeymap,
  history,
  historyKeymap,
  indentWithTab,
} from "@codemirror/commands";
import {
  syntaxHighlighting,
  HighlightStyle,
  indentOnInput,
  bracketMatching,
  foldGutter,
  foldKeymap,
  StreamLanguage,
} from "@codemirror/language";
import {
  autocompletion,
  completionKeymap,
  closeBrackets,
  closeBracketsKeymap,
} from "@codemirror/autocomplete";
import { lintGutter, lintKeymap, setDiagnostics } from "@codemirror/lint";
import { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { yaml } from "@codemirror/lang-yaml";
import { json } from "@codemirror/lang-json";
import { tags as t } from "@lezer/highlight";

// --- The Jinja expression mode ---------------------------------------------------------------

const KEYWORDS = new Set([
  "and", "or", "not", "in", "is", "if", "else", "elif", "endif", "for", "endfor", "set",
  "recursive",
]);
const ATOMS = new Set(["true", "false", "none", "True", "False", "None"]);

/** Text with {{ expression }} and {% statement %} parts; outside them, plain text. */
const jinjaExpression = StreamLanguage.define({
  name: "jinja-expression",
  startState: () => ({ inside: null, after: "" }),
  token(stream, state) {
    if (!state.inside) {
      if (stream.match("{{") || stream.match("{%")) {
        state.inside = stream.current() === "{{" ? "}}" : "%}";
        state.after = "";
        return "meta";
      }
      if (!stream.skipTo("{{") && !stream.skipTo("{%")) stream.skipToEnd();
      if (stream.pos === stream.start) stream.next();
      return "string";
    }
    if (stream.eatSpace()) return null;
    if (stream.match(state.inside)) {
      state.inside = null;
      return "meta";
    }
    const quote = stream.match(/^(['"])/);
    if (quote) {
      const q = quote[1];
      let escaped = false;
      let ch;
      while ((ch = stream.next()) != null) {
        if (ch === q && !escaped) break;
        escaped = !escaped && ch === "\\";
      }
      state.after = "";
      return "string";
    }
    if (stream.match(/^\d+(\.\d+)?/)) {
      state.after = "";
      return "number";
    }
    const word = stream.match(/^[A-Za-z_][A-Za-z0-9_]*/);
    if (word) {
      const name = word[0];
      const after = state.after;
      state.after = "";
      if (after === "|") return "function";
      if (after === ".") return "propertyName";
      if (KEYWORDS.has(name)) return "keyword";
      if (ATOMS.has(name)) return "atom";
      return "variableName";
    }
    const ch = stream.next();
    state.after = ch === "." || ch === "|" ? ch : "";
    if ("()[]{}".includes(ch)) return "bracket";
    if (ch === "," || ch === ":" || ch === ".") return "punctuation";
    return "operator";
  },
  languageData: { closeBrackets: { brackets: ["(", "[", "{", "'", '"'] } },
});

// --- Looks: the hub's tokens (ui/static/hub.css), light and dark ------------------------------

const highlight = HighlightStyle.define([
  { tag: [t.keyword, t.operatorKeyword], color: "var(--hub-cm-keyword)" },
  { tag: [t.string, t.special(t.string)], color: "var(--hub-cm-string)" },
  { tag: [t.number, t.bool, t.null, t.atom], color: "var(--hub-cm-number)" },
  { tag: [t.propertyName, t.definition(t.propertyName)], color: "var(--hub-cm-property)" },
  { tag: [t.function(t.variableName), t.function(t.propertyName)], color: "var(--hub-cm-keyword)" },
  { tag: [t.comment, t.lineComment, t.blockComment], color: "var(--hub-cm-comment)", fontStyle: "italic" },
  { tag: [t.meta, t.processingInstruction, t.labelName, t.typeName], color: "var(--hub-cm-meta)" },
  { tag: t.invalid, color: "var(--danger, #b3261e)" },
]);

const theme = EditorView.theme({
  "&": {
    // light-dark(): the page's color-scheme (hub.css: "light dark") picks the pair's colour.
    "--hub-cm-keyword": "light-dark(#8250df, #d2a8ff)",
    "--hub-cm-string": "light-dark(#0a3069, #a5d6ff)",
    "--hub-cm-number": "light-dark(#0550ae, #79c0ff)",
    "--hub-cm-property": "light-dark(#116329, #7ee787)",
    "--hub-cm-comment": "light-dark(#57606a, #9ea7b3)",
    "--hub-cm-meta": "light-dark(#953800, #ffa657)",
    "--hub-cm-expression": "light-dark(#fff8c5, #3a2b06)",
    color: "var(--text, #1b1f24)",
    backgroundColor: "var(--bg, #ffffff)",
    border: "1px solid var(--border, #d5d9e0)",
    borderRadius: "var(--radius, 6px)",
    fontSize: "0.9rem",
  },
  "&.cm-focused": { outline: "3px solid var(--focus, #0b5cd5)", outlineOffset: "2px" },
  ".cm-scroller": { fontFamily: "var(--mono, ui-monospace, monospace)", lineHeight: "1.5" },
  ".cm-content": { caretColor: "var(--text, #1b1f24)" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--text, #1b1f24)" },
  ".cm-gutters": {
    backgroundColor: "var(--bg-soft, #f6f7f9)",
    color: "var(--muted, #57606a)",
    borderRight: "1px solid var(--border, #d5d9e0)",
  },
  ".cm-activeLine": { backgroundColor: "color-mix(in srgb, var(--accent, #0b5cd5) 6%, transparent)" },
  ".cm-activeLineGutter": { backgroundColor: "color-mix(in srgb, var(--accent, #0b5cd5) 12%, transparent)" },
  "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection":
    { backgroundColor: "color-mix(in srgb, var(--accent, #0b5cd5) 25%, transparent)" },
  ".cm-hub-expression": { backgroundColor: "var(--hub-cm-expression)", borderRadius: "3px" },
  ".cm-tooltip": {
    backgroundColor: "var(--bg-raised, #ffffff)",
    color: "var(--text, #1b1f24)",
    border: "1px solid var(--border, #d5d9e0)",
  },
  ".cm-tooltip-autocomplete > ul > li[aria-selected]": {
    backgroundColor: "var(--accent, #0b5cd5)",
    color: "var(--accent-text, #ffffff)",
  },
  ".cm-diagnostic": { color: "var(--text, #1b1f24)" },
  ".cm-panels": { backgroundColor: "var(--bg-soft, #f6f7f9)", color: "var(--text, #1b1f24)" },
  "&.hub-cm-single .cm-content": { padding: "4px 0" },
});

// A multi-line editor: about as tall as the textarea it replaces, scrolling past 70% of the
// window's height.
const multiLineTheme = EditorView.theme({
  "&": { maxHeight: "70vh" },
  ".cm-scroller": { overflow: "auto" },
  ".cm-content, .cm-gutter": { minHeight: "22rem" },
});

// {{ ... }} and {% ... %} inside YAML or JSON strings, marked so they stand out.
const expressionMarks = ViewPlugin.fromClass(
  class {
    constructor(view) {
      this.matcher = new MatchDecorator({
        regexp: /\{\{[\s\S]*?\}\}|\{%[\s\S]*?%\}/g,
        decoration: Decoration.mark({ class: "cm-hub-expression" }),
      });
      this.decorations = this.matcher.createDeco(view);
    }
    update(update) {
      this.decorations = this.matcher.updateDeco(update, this.decorations);
    }
  },
  { decorations: (plugin) => plugin.decorations },
);

// --- The editor -------------------------------------------------------------------------------

const programmatic = Annotation.define();

function languageOf(name) {
  if (name === "json") return [json(), expressionMarks];
  if (name === "expression") return [jinjaExpression];
  return [yaml(), expressionMarks];
}

/** No newline ever enters a single-line editor: typed, pasted or dropped. */
const oneLine = [
  Prec.high(keymap.of([{ key: "Enter", run: () => true }, { key: "Shift-Enter", run: () => true }])),
  EditorState.transactionFilter.of((tr) => {
    if (!tr.docChanged || tr.newDoc.lines === 1) return tr;
    const flat = tr.newDoc.toString().replace(/\r?\n/g, " ");
    return [tr, { changes: { from: 0, to: tr.newDoc.length, insert: flat }, sequential: true }];
  }),
];

/**
 * Text of several lines inserted as one "insertText" input (by a script or an input method,
 * not a keyboard) goes through a transaction, never through the browser's own editing of
 * the DOM: Chromium builds that with style attributes, which the hub's CSP refuses (a
 * violation report each time).
 */
const multiLineInsert = EditorView.domEventHandlers({
  beforeinput(event, view) {
    const kind = event.inputType;
    if (
      (kind === "insertText" || kind === "insertReplacementText") &&
      typeof event.data === "string" &&
      /[\r\n]/.test(event.data) &&
      !view.state.readOnly
    ) {
      // What the input replaces: its target range, else the DOM's selection (the editor's
      // state may not have caught up with either yet), else the editor's selection.
      let range = event.getTargetRanges ? event.getTargetRanges()[0] : null;
      const selection = view.root.getSelection ? view.root.getSelection() : null;
      if (!range && selection && selection.rangeCount) range = selection.getRangeAt(0);
      let from = view.state.selection.main.from;
      let to = view.state.selection.main.to;
      if (range && view.contentDOM.contains(range.startContainer)) {
        try {
          const a = view.posAtDOM(range.startContainer, range.startOffset);
          const b = view.posAtDOM(range.endContainer, range.endOffset);
          from = Math.min(a, b);
          to = Math.max(a, b);
        } catch (_) {
          // not in the document's lines: keep the editor's selection
        }
      }
      event.preventDefault();
      const text = event.data.replace(/\r\n?/g, "\n");
      view.dispatch({
        changes: { from, to, insert: text },
        selection: { anchor: from + text.length },
        userEvent: "input.paste",
        scrollIntoView: true,
      });
      return true;
    }
    return false;
  },
});

function completionSource(complete) {
  return async (context) => {
    const text = context.state.doc.toString();
    const result = await complete(text, context.pos);
    if (!result || context.aborted) return null;
    return { from: result.from, to: result.to, options: result.options, validFor: result.validFor };
  };
}

/** Turn the hub's diagnostics (1-based lines and columns) into CodeMirror's (offsets). */
function toDiagnostics(doc, items) {
  const out = [];
  for (const item of items || []) {
    let from;
    let to;
    if (typeof item.from === "number") {
      from = Math.max(0, Math.min(item.from, doc.length));
      to = Math.max(from, Math.min(typeof item.to === "number" ? item.to : from, doc.length));
    } else {
      const number = Math.max(1, Math.min(item.line || 1, doc.lines));
      const line = doc.line(number);
      if (item.column) {
        from = Math.min(line.from + item.column - 1, line.to);
        to = line.to > from ? line.to : from;
      } else {
        from = line.from;
        to = line.to;
      }
    }
    out.push({ from, to, message: String(item.message), severity: item.severity || "error" });
  }
  return out;
}

function create(parent, options = {}) {
  const opts = Object.assign(
    { doc: "", language: "yaml", label: "", singleLine: false, readOnly: false },
    options,
  );
  const extensions = [
    highlightSpecialChars(),
    history(),
    drawSelection(),
    EditorState.allowMultipleSelections.of(false),
    indentOnInput(),
    syntaxHighlighting(highlight),
    bracketMatching(),
    closeBrackets(),
    highlightSelectionMatches(),
    theme,
    languageOf(opts.language),
    multiLineInsert,
    autocompletion(opts.complete ? { override: [completionSource(opts.complete)] } : {}),
    keymap.of([
      ...closeBracketsKeymap,
      ...defaultKeymap,
      ...searchKeymap,
      ...historyKeymap,
      ...foldKeymap,
      ...completionKeymap,
      ...lintKeymap,
    ]),
    EditorView.contentAttributes.of(
      Object.assign(
        {
          "aria-label": opts.label || "Code",
          "aria-multiline": opts.singleLine ? "false" : "true",
          // Focusable by attribute too: checkers (axe's scrollable-region-focusable) count
          // tabindex, not contenteditable, as a scroller's keyboard access.
          tabindex: "0",
        },
        opts.attributes || {},
      ),
    ),
    EditorView.updateListener.of((update) => {
      if (
        update.docChanged &&
        opts.onChange &&
        !update.transactions.some((tr) => tr.annotation(programmatic))
      ) {
        opts.onChange(update.state.doc.toString());
      }
      if (update.focusChanged && !update.view.hasFocus && opts.onBlur) opts.onBlur();
    }),
  ];
  if (opts.singleLine) {
    extensions.push(oneLine, EditorView.editorAttributes.of({ class: "hub-cm-single" }));
  } else {
    extensions.push(
      lineNumbers(),
      highlightActiveLineGutter(),
      highlightActiveLine(),
      foldGutter(),
      lintGutter(),
      multiLineTheme,
      keymap.of([indentWithTab]),
    );
  }
  if (opts.readOnly) extensions.push(EditorState.readOnly.of(true));

  const view = new EditorView({
    parent,
    state: EditorState.create({ doc: opts.doc || "", extensions }),
  });
  return {
    view,
    getText: () => view.state.doc.toString(),
    setText(text) {
      view.dispatch({
        changes: { from: 0, to: view.state.doc.length, insert: text },
        annotations: programmatic.of(true),
      });
    },
    setDiagnostics(items) {
      view.dispatch(setDiagnostics(view.state, toDiagnostics(view.state.doc, items)));
    },
    focus: () => view.focus(),
    destroy: () => view.destroy(),
  };
}

function labelOf(textarea) {
  const label = textarea.labels && textarea.labels[0];
  return (label && label.textContent.trim()) || textarea.getAttribute("aria-label") || "";
}

function fromTextarea(textarea, options = {}) {
  const holder = document.createElement("div");
  holder.className = "hub-editor";
  textarea.after(holder);
  const onChange = options.onChange;
  const attributes = {};
  for (const name of ["aria-describedby", "aria-required"]) {
    if (textarea.hasAttribute(name)) attributes[name] = textarea.getAttribute(name);
  }
  const label = textarea.labels && textarea.labels[0];
  const editor = create(
    holder,
    Object.assign({ doc: textarea.value, label: labelOf(textarea), attributes }, options, {
      onChange(text) {
        textarea.value = text;
        textarea.dispatchEvent(new Event("input", { bubbles: true }));
        if (onChange) onChange(text);
      },
    }),
  );
  textarea.hidden = true;
  if (label) {
    // The label now names the editor (its aria-label): a click on it focuses the editor, as
    // it focused the textarea, and the hidden textarea (the form's field) has no label.
    label.htmlFor = "";
    label.removeAttribute("for");
    label.addEventListener("click", () => editor.focus());
  }
  const setText = editor.setText;
  editor.setText = (text) => {
    setText(text);
    textarea.value = text;
  };
  const destroy = editor.destroy;
  editor.destroy = () => {
    destroy();
    holder.remove();
    textarea.hidden = false;
    if (label) label.htmlFor = textarea.id;
  };
  editor.textarea = textarea;
  return editor;
}

export { create, fromTextarea };
