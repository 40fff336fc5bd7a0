// TipTap 3 + y-prosemirror conversions for collab/tests/richtext_js.rs, which checks Dure's
// rich-text import and export (collab/src/richtext) against the real JS stack.
//
// One request per run: a JSON object on stdin, a JSON object on stdout, exit code 1 and a
// message on stderr on any failure (schema violation, disagreement between bindings).
//
//   {"op": "encode", "doc": <ProseMirror JSON>}
//     → {"update": <Yjs v1 update as an array of bytes>, "yjs": <dump>}
//     The doc goes through schema.nodeFromJSON(…).check(), then y-prosemirror's
//     prosemirrorJSONToYDoc into the fragment "default". TipTap 3's Collaboration extension
//     binds through @tiptap/y-tiptap (a fork of y-prosemirror): both must write the same.
//   {"op": "decode", "update": <array of bytes>}
//     → {"json": <yDocToProsemirrorJSON>, "normalized": <node.toJSON()>, "yjs": <dump>}
//     The JSON must pass schema.nodeFromJSON(…).check(), and loading the fragment the way the
//     editor does (yXmlFragmentToProseMirrorRootNode, which silently deletes what the schema
//     rejects) must keep everything.
//   {"op": "normalize", "doc": <ProseMirror JSON>} → {"normalized": <node.toJSON()>}
//
// <dump> is the Yjs structure itself: {"element": name, "attrs": {...}, "children": [...]}
// for a Y.XmlElement and {"delta": Y.XmlText.toDelta()} for a Y.XmlText.

import { getSchema } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import { TableKit } from '@tiptap/extension-table'
import { TaskList, TaskItem } from '@tiptap/extension-list'
import Image from '@tiptap/extension-image'
import * as Y from 'yjs'
import * as yProsemirror from 'y-prosemirror'
import * as yTiptap from '@tiptap/y-tiptap'

const FRAGMENT = 'default'

// The extensions the browser app registers (collab/src/richtext/schema.rs mirrors them).
const schema = getSchema([
  StarterKit,
  TableKit,
  TaskList,
  TaskItem.configure({ nested: true }),
  Image
])

const dumpType = (type) => {
  if (type instanceof Y.XmlElement) {
    return {
      element: type.nodeName,
      attrs: type.getAttributes(),
      children: type.toArray().map(dumpType)
    }
  }
  if (type instanceof Y.XmlText) {
    return { delta: type.toDelta() }
  }
  throw new Error(`unexpected Yjs type ${type.constructor.name} in the fragment`)
}

const dump = (ydoc) => ydoc.getXmlFragment(FRAGMENT).toArray().map(dumpType)

const checked = (json) => {
  const node = schema.nodeFromJSON(json)
  node.check()
  return node
}

const encode = ({ doc }) => {
  checked(doc)
  const viaProsemirror = yProsemirror.prosemirrorJSONToYDoc(schema, doc, FRAGMENT)
  const viaTiptap = yTiptap.prosemirrorJSONToYDoc(schema, doc, FRAGMENT)
  const a = JSON.stringify(dump(viaProsemirror))
  const b = JSON.stringify(dump(viaTiptap))
  if (a !== b) {
    throw new Error(`y-prosemirror and @tiptap/y-tiptap disagree:\n${a}\n${b}`)
  }
  return {
    update: Array.from(Y.encodeStateAsUpdate(viaTiptap)),
    yjs: dump(viaTiptap)
  }
}

const decode = ({ update }) => {
  const ydoc = new Y.Doc()
  Y.applyUpdate(ydoc, Uint8Array.from(update))
  const before = JSON.stringify(dump(ydoc))
  const json = yProsemirror.yDocToProsemirrorJSON(ydoc, FRAGMENT)
  const normalized = checked(json).toJSON()
  for (const [name, binding] of [['y-prosemirror', yProsemirror], ['@tiptap/y-tiptap', yTiptap]]) {
    const root = binding.yXmlFragmentToProseMirrorRootNode(ydoc.getXmlFragment(FRAGMENT), schema)
    root.check()
    if (JSON.stringify(dump(ydoc)) !== before) {
      throw new Error(`${name} deleted content the schema rejects while loading the fragment`)
    }
    if (JSON.stringify(root.toJSON()) !== JSON.stringify(normalized)) {
      throw new Error(`${name} loads a different document:\n${JSON.stringify(root.toJSON())}`)
    }
  }
  return { json, normalized, yjs: dump(ydoc) }
}

const normalize = ({ doc }) => ({ normalized: checked(doc).toJSON() })

const ops = { encode, decode, normalize }

const readStdin = async () => {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}

try {
  const request = JSON.parse(await readStdin())
  const op = ops[request.op]
  if (!op) throw new Error(`unknown op ${JSON.stringify(request.op)}`)
  process.stdout.write(JSON.stringify(op(request)))
} catch (e) {
  process.stderr.write(`check.mjs: ${e.stack || e}\n`)
  process.exitCode = 1
}
