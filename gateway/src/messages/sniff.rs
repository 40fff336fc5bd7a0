//! What an uploaded file is (`docs/messaging.md`, "Files (HTTP)"): decided from its bytes,
//! never from what the client says. The claimed `Content-Type` and the name's extension
//! only have to agree with the bytes, so that a file is saved and opened as what it is: on
//! the desktop a download is opened by its extension, and a PNG named `x.hta` or a zip named
//! `x.jar` would run as a program there whatever type the server sent.

use std::io::{Cursor, Read};

/// How much of the start of a file the signatures and the text check look at.
pub const SNIFF_BYTES: usize = 64 * 1024;

/// The types a conversation accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    Png,
    Jpeg,
    Gif,
    Webp,
    Pdf,
    Docx,
    Xlsx,
    Pptx,
    Odt,
    Ods,
    Odp,
    Hwpx,
    Hwp,
    Zip,
    Text,
    Markdown,
    Csv,
}

/// Claims any zip-based type may come with: browsers label by extension, and some (Windows)
/// only know the container.
const ZIP_CLAIMS: &[&str] = &[
    "application/zip",
    "application/x-zip-compressed",
    "application/x-zip",
    "multipart/x-zip",
];
/// Claims any text type may come with: the bytes are text whichever the browser chose.
const TEXT_CLAIMS: &[&str] = &[
    "text/plain",
    "text/markdown",
    "text/x-markdown",
    "text/csv",
    "text/x-csv",
    "application/csv",
];

impl FileType {
    pub const ALL: &[FileType] = &[
        FileType::Png,
        FileType::Jpeg,
        FileType::Gif,
        FileType::Webp,
        FileType::Pdf,
        FileType::Docx,
        FileType::Xlsx,
        FileType::Pptx,
        FileType::Odt,
        FileType::Ods,
        FileType::Odp,
        FileType::Hwpx,
        FileType::Hwp,
        FileType::Zip,
        FileType::Text,
        FileType::Markdown,
        FileType::Csv,
    ];

    /// The type stored and served.
    pub fn mime(self) -> &'static str {
        use FileType::*;
        match self {
            Png => "image/png",
            Jpeg => "image/jpeg",
            Gif => "image/gif",
            Webp => "image/webp",
            Pdf => "application/pdf",
            Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Pptx => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            Odt => "application/vnd.oasis.opendocument.text",
            Ods => "application/vnd.oasis.opendocument.spreadsheet",
            Odp => "application/vnd.oasis.opendocument.presentation",
            // What an HWPX package's own `mimetype` entry says.
            Hwpx => "application/hwp+zip",
            Hwp => "application/x-hwp",
            Zip => "application/zip",
            Text => "text/plain",
            Markdown => "text/markdown",
            Csv => "text/csv",
        }
    }

    /// Extensions a name of this type may end with (lowercase).
    pub fn extensions(self) -> &'static [&'static str] {
        use FileType::*;
        match self {
            Png => &["png"],
            Jpeg => &["jpg", "jpeg", "jpe", "jfif"],
            Gif => &["gif"],
            Webp => &["webp"],
            Pdf => &["pdf"],
            Docx => &["docx"],
            Xlsx => &["xlsx"],
            Pptx => &["pptx"],
            Odt => &["odt"],
            Ods => &["ods"],
            Odp => &["odp"],
            Hwpx => &["hwpx"],
            Hwp => &["hwp"],
            Zip => &["zip"],
            Text => &["txt"],
            Markdown => &["md"],
            Csv => &["csv"],
        }
    }

    /// Other spellings of this type that browsers and systems send.
    fn aliases(self) -> &'static [&'static str] {
        use FileType::*;
        match self {
            Png => &["image/x-png"],
            Jpeg => &["image/jpg", "image/pjpeg"],
            Pdf => &["application/x-pdf"],
            Docx | Xlsx | Pptx | Odt | Ods | Odp | Zip => ZIP_CLAIMS,
            Hwpx => &[
                "application/vnd.hancom.hwpx",
                "application/haansofthwpx",
                "application/zip",
                "application/x-zip-compressed",
            ],
            Hwp => &["application/vnd.hancom.hwp", "application/haansofthwp"],
            Text | Markdown => TEXT_CLAIMS,
            // Windows labels .csv by whatever spreadsheet program is installed.
            Csv => &[
                "text/plain",
                "text/markdown",
                "text/x-markdown",
                "text/x-csv",
                "application/csv",
                "application/vnd.ms-excel",
            ],
            Gif | Webp => &[],
        }
    }

    /// Whether a thumbnail is made.
    pub fn is_image(self) -> bool {
        matches!(
            self,
            FileType::Png | FileType::Jpeg | FileType::Gif | FileType::Webp
        )
    }

    fn is_zip_based(self) -> bool {
        use FileType::*;
        matches!(self, Docx | Xlsx | Pptx | Odt | Ods | Odp | Hwpx | Zip)
    }

    fn is_text(self) -> bool {
        matches!(self, FileType::Text | FileType::Markdown | FileType::Csv)
    }

    fn from_extension(ext: &str) -> Option<FileType> {
        FileType::ALL
            .iter()
            .copied()
            .find(|t| t.extensions().contains(&ext))
    }

    /// The type a claim names; only primary types, so that an alias shared with a refused
    /// type (`application/vnd.ms-excel` is also Excel 97) does not make its bytes a mismatch.
    fn from_claim(claim: &str) -> Option<FileType> {
        FileType::ALL.iter().copied().find(|t| t.mime() == claim)
    }

    fn accepts_claim(self, claim: &str) -> bool {
        self.mime() == claim || self.aliases().contains(&claim)
    }
}

/// Why an upload is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The claimed type or the name's extension says something the bytes are not.
    Mismatch(String),
    /// The bytes are of a type conversations do not take.
    NotAllowed(String),
}

/// What the bytes alone say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Content {
    Is(FileType),
    Zip,
    Text,
    /// No signature, no NUL (or a UTF-16 byte order mark), but not UTF-8: most likely text
    /// in a legacy encoding (a spreadsheet's CSV export in CP949).
    ForeignText,
    /// Something else; the signature's type when one matched.
    Other(Option<&'static str>),
}

fn content(data: &[u8]) -> Content {
    let head = &data[..data.len().min(SNIFF_BYTES)];
    match infer::get(head).map(|t| t.mime_type()) {
        Some("image/png") => Content::Is(FileType::Png),
        Some("image/jpeg") => Content::Is(FileType::Jpeg),
        Some("image/gif") => Content::Is(FileType::Gif),
        Some("image/webp") => Content::Is(FileType::Webp),
        Some("application/pdf") => Content::Is(FileType::Pdf),
        // infer looks into a zip's first entries to tell office documents and e-books
        // apart; that guess is not needed: the container is what matters here, and the
        // extension says which application opens it.
        Some(
            "application/zip"
            | "application/epub+zip"
            | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            | "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            | "application/vnd.oasis.opendocument.text"
            | "application/vnd.oasis.opendocument.spreadsheet"
            | "application/vnd.oasis.opendocument.presentation",
        ) => Content::Zip,
        // Compound files (OLE2): Word/Excel 97, installers (msi) and HWP 5 alike.
        Some(
            m @ ("application/x-ole-storage"
            | "application/msword"
            | "application/vnd.ms-excel"
            | "application/vnd.ms-powerpoint"),
        ) => {
            if is_hwp(data) {
                Content::Is(FileType::Hwp)
            } else {
                Content::Other(Some(m))
            }
        }
        // Markup and scripts are text; what they are matters only when rendered or run,
        // and a stored text file is served as text/plain, as an attachment, unsniffed.
        None | Some("text/html" | "text/x-shellscript") if is_text(head) => Content::Text,
        None if head.starts_with(b"\xff\xfe")
            || head.starts_with(b"\xfe\xff")
            || !head.contains(&0) =>
        {
            Content::ForeignText
        }
        other => Content::Other(other),
    }
}

/// UTF-8 without NUL (text in another encoding, UTF-16 included, is not taken: it has NULs
/// or is not UTF-8). The head may cut a character in two at its end.
fn is_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        // `error_len() == None`: only an incomplete sequence at the very end.
        Err(e) => e.error_len().is_none() && head.len() == SNIFF_BYTES,
    }
}

/// An HWP 5 document: a compound file whose `FileHeader` stream starts with its signature
/// (HWP 5.0 format, 3.2.1). A Word file or an installer renamed `.hwp` is not one.
fn is_hwp(data: &[u8]) -> bool {
    const SIGNATURE: &[u8] = b"HWP Document File";
    let Ok(mut file) = cfb::CompoundFile::open(Cursor::new(data)) else {
        return false;
    };
    let Ok(stream) = file.open_stream("/FileHeader") else {
        return false;
    };
    let mut head = Vec::with_capacity(SIGNATURE.len());
    stream
        .take(SIGNATURE.len() as u64)
        .read_to_end(&mut head)
        .is_ok()
        && head == SIGNATURE
}

/// The extension of a (cleaned) file name, lowercase: what follows its last dot.
pub fn extension(name: &str) -> Option<String> {
    name.rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|ext| !ext.is_empty())
}

/// A `Content-Type` header's type without parameters, lowercase; `None` when it says
/// nothing (missing, empty, or `application/octet-stream`: "use the extension").
pub fn claimed_type(header: Option<&str>) -> Option<String> {
    let essence = header?.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty() && essence != "application/octet-stream").then_some(essence)
}

/// The type of `data` uploaded as `name` with the claimed type (see [`claimed_type`]).
pub fn decide(data: &[u8], name: &str, claimed: Option<&str>) -> Result<FileType, Refusal> {
    let ext = extension(name);
    let by_ext = ext.as_deref().and_then(FileType::from_extension);
    let content = content(data);
    let found = match content {
        Content::Is(t) => Some(t),
        Content::Zip => Some(by_ext.filter(|t| t.is_zip_based()).unwrap_or(FileType::Zip)),
        Content::Text => by_ext.filter(|t| t.is_text()),
        Content::ForeignText | Content::Other(_) => None,
    };
    let Some(found) = found else {
        // Refused bytes. Named or claimed as an accepted type they are a mismatch (the
        // likelier mistake, or a disguise); otherwise their type is not taken.
        let said = claimed.and_then(FileType::from_claim).or(by_ext);
        return match (said, content) {
            (Some(t), Content::Text) if t.is_text() => Err(Refusal::NotAllowed(
                "text files must be named .txt, .md or .csv".into(),
            )),
            (None, Content::ForeignText) => Err(Refusal::NotAllowed(
                "files of this type are not taken (text must be UTF-8)".into(),
            )),
            (Some(t), Content::ForeignText) if t.is_text() => {
                Err(Refusal::NotAllowed("text files must be UTF-8".into()))
            }
            (Some(t), _) => Err(Refusal::Mismatch(format!(
                "the file is not {} as its {} says",
                t.mime(),
                if claimed.and_then(FileType::from_claim).is_some() {
                    "type"
                } else {
                    "name"
                }
            ))),
            (None, Content::Text) => Err(Refusal::NotAllowed(
                "text files must be named .txt, .md or .csv".into(),
            )),
            (None, Content::Other(Some(m))) => Err(Refusal::NotAllowed(format!(
                "files of type {m} are not taken"
            ))),
            (None, _) => Err(Refusal::NotAllowed(
                "files of this type are not taken".into(),
            )),
        };
    };
    if let Some(c) = claimed
        && !found.accepts_claim(c)
    {
        return Err(Refusal::Mismatch(format!(
            "the file is {}, not {c} as claimed",
            found.mime()
        )));
    }
    if let Some(e) = &ext
        && by_ext != Some(found)
    {
        return Err(Refusal::Mismatch(format!(
            "the file is {}, which is not named .{e}",
            found.mime()
        )));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";
    const GIF: &[u8] = b"GIF89a\x01\0\x01\0\0\0\0;";
    const WEBP: &[u8] =
        b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07\0";
    const PDF: &[u8] = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n";
    const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";
    const MZ: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0\xb8\0\0\0\0\0\0\0@\0";
    const HTML: &[u8] = b"<!DOCTYPE html>\n<html><script>alert(1)</script></html>\n";

    /// A zip with one stored entry `name`.
    fn zip(name: &str) -> Vec<u8> {
        // Signature, version, flags, method, time, date, CRC, sizes: 26 bytes.
        let mut z = b"PK\x03\x04\x14\0".to_vec();
        z.resize(26, 0);
        z.extend_from_slice(&(name.len() as u16).to_le_bytes());
        z.extend_from_slice(&[0, 0]);
        z.extend_from_slice(name.as_bytes());
        z.extend_from_slice(b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        z
    }

    /// A compound file holding `stream` with `content` (HWP 5 keeps its signature in
    /// `/FileHeader`).
    fn compound(stream: &str, content: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut file = cfb::CompoundFile::create(Cursor::new(Vec::new())).expect("create");
        let mut s = file.create_stream(stream).expect("stream");
        s.write_all(content).expect("write");
        drop(s);
        file.flush().expect("flush");
        file.into_inner().into_inner()
    }

    fn hwp() -> Vec<u8> {
        let mut header = b"HWP Document File".to_vec();
        header.resize(256, 0);
        compound("/FileHeader", &header)
    }

    const OCTET: Option<&str> = None;

    #[test]
    fn decisions() {
        use FileType::*;
        let docx = zip("[Content_Types].xml");
        let hwp = hwp();
        let word97 = compound("/WordDocument", b"not a hwp");
        let mut utf8_cut = "가".repeat(SNIFF_BYTES / 3 + 1).into_bytes();
        utf8_cut.truncate(SNIFF_BYTES + 1);
        let ok: &[(&[u8], &str, Option<&str>, FileType)] = &[
            (PNG, "a.png", Some("image/png"), Png),
            (PNG, "a.PNG", OCTET, Png),
            (PNG, "screenshot", OCTET, Png),
            (JPEG, "photo.jpg", Some("image/jpeg"), Jpeg),
            (JPEG, "photo.jpeg", Some("image/pjpeg"), Jpeg),
            (GIF, "x.gif", Some("image/gif"), Gif),
            (WEBP, "x.webp", Some("image/webp"), Webp),
            (PDF, "보고서.pdf", Some("application/pdf"), Pdf),
            (&docx, "plan.docx", Some(Docx.mime()), Docx),
            (&docx, "plan.xlsx", Some("application/zip"), Xlsx),
            (&docx, "deck.pptx", OCTET, Pptx),
            (&docx, "memo.hwpx", OCTET, Hwpx),
            (&docx, "memo.hwpx", Some("application/hwp+zip"), Hwpx),
            (&docx, "sheet.ods", OCTET, Ods),
            (
                &docx,
                "files.zip",
                Some("application/x-zip-compressed"),
                Zip,
            ),
            (&docx, "files", OCTET, Zip),
            (&hwp, "공문.hwp", OCTET, Hwp),
            (&hwp, "공문.hwp", Some("application/x-hwp"), Hwp),
            (b"hello\n", "notes.txt", Some("text/plain"), Text),
            (b"# Title\n", "README.md", Some("text/markdown"), Markdown),
            (
                b"a,b\n1,2\n",
                "data.csv",
                Some("application/vnd.ms-excel"),
                Csv,
            ),
            (b"a,b\n", "data.csv", OCTET, Csv),
            (b"", "empty.txt", OCTET, Text),
            // Markdown may hold HTML; stored as text it is served as text.
            (
                b"<p align=\"center\">logo</p>\n",
                "README.md",
                OCTET,
                Markdown,
            ),
            (HTML, "page.txt", Some("text/plain"), Text),
            (&utf8_cut, "long.txt", OCTET, Text),
        ];
        for (data, name, claim, want) in ok {
            assert_eq!(
                decide(data, name, *claim),
                Ok(*want),
                "{name} claimed {claim:?}"
            );
        }
        let mismatch: &[(&[u8], &str, Option<&str>)] = &[
            (HTML, "x.png", Some("image/png")),
            (HTML, "x", Some("image/png")),
            (PNG, "x.pdf", OCTET),
            (PNG, "x.png", Some("application/pdf")),
            (PNG, "x.pdf", Some("image/png")),
            // A polyglot named for a program.
            (PNG, "x.hta", Some("image/png")),
            (JPEG, "x.png", OCTET),
            (&docx, "x.jar", OCTET),
            (&docx, "x.docx", Some("image/png")),
            (PDF, "x.pdf", Some("text/plain")),
            (b"plain", "x.txt", Some("image/png")),
            (b"plain", "x.png", OCTET),
            (ELF, "x.png", Some("image/png")),
            (&word97, "x.hwp", OCTET),
            (b"\xb0\xa1", "x.png", Some("image/png")),
            // Binary named as text.
            (b"a\0b", "x.txt", OCTET),
        ];
        for (data, name, claim) in mismatch {
            assert!(
                matches!(decide(data, name, *claim), Err(Refusal::Mismatch(_))),
                "{name} claimed {claim:?}: {:?}",
                decide(data, name, *claim)
            );
        }
        let not_allowed: &[(&[u8], &str, Option<&str>)] = &[
            (ELF, "tool", OCTET),
            (ELF, "tool", Some("application/x-executable")),
            (MZ, "setup.exe", Some("application/x-msdownload")),
            (MZ, "setup.exe", OCTET),
            (HTML, "page.html", Some("text/html")),
            (
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
                "x.svg",
                Some("image/svg+xml"),
            ),
            (b"{}", "x.json", Some("application/json")),
            (b"plain", "notes", Some("text/plain")),
            (&word97, "x.doc", Some("application/msword")),
            (&word97, "x.xls", Some("application/vnd.ms-excel")),
            (b"\xff\xfeh\0i\0", "utf16.txt", Some("text/plain")),
            (b"\xb0\xa1,\xb0\xa2\n", "cp949.csv", OCTET),
            (b"\xb0\xa1,\xb0\xa2\n", "cp949", OCTET),
        ];
        for (data, name, claim) in not_allowed {
            assert!(
                matches!(decide(data, name, *claim), Err(Refusal::NotAllowed(_))),
                "{name} claimed {claim:?}: {:?}",
                decide(data, name, *claim)
            );
        }
    }

    #[test]
    fn claims_lose_their_parameters_and_octet_stream_says_nothing() {
        assert_eq!(
            claimed_type(Some("Text/Plain; charset=UTF-8")).as_deref(),
            Some("text/plain")
        );
        assert_eq!(claimed_type(Some("application/octet-stream")), None);
        assert_eq!(claimed_type(Some(" ")), None);
        assert_eq!(claimed_type(None), None);
        assert_eq!(extension("a.tar.GZ").as_deref(), Some("gz"));
        assert_eq!(extension("noext"), None);
        assert_eq!(extension(".hta").as_deref(), Some("hta"));
    }

    #[test]
    fn every_type_names_itself_and_its_extensions() {
        for t in FileType::ALL {
            assert!(t.accepts_claim(t.mime()));
            assert_eq!(FileType::from_claim(t.mime()), Some(*t));
            for e in t.extensions() {
                assert_eq!(FileType::from_extension(e), Some(*t), "{e}");
            }
        }
    }
}
