//! The y-websocket messages the bridge reads and writes, plus Dure's save acknowledgement
//! (`100, varUint(n)`).

use yrs::encoding::read::Read;
use yrs::updates::decoder::DecoderV1;

pub enum Msg {
    Step1(Vec<u8>),
    Step2(Vec<u8>),
    Update(Vec<u8>),
    Ack(u64),
    /// y-protocols permission-denied (a viewer's update was refused).
    Denied,
    Other,
}

pub fn decode(bytes: &[u8]) -> Result<Msg, yrs::encoding::read::Error> {
    let mut d = DecoderV1::from(bytes);
    let tag: u64 = d.read_var()?;
    Ok(match tag {
        0 => {
            let sub: u64 = d.read_var()?;
            let payload = d.read_buf()?.to_vec();
            match sub {
                0 => Msg::Step1(payload),
                1 => Msg::Step2(payload),
                2 => Msg::Update(payload),
                _ => Msg::Other,
            }
        }
        2 => {
            let denied = d.read_var::<u8>()? == 0;
            if denied { Msg::Denied } else { Msg::Other }
        }
        100 => Msg::Ack(d.read_var()?),
        _ => Msg::Other,
    })
}

fn var(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

fn sync(sub: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(payload.len() + 8);
    var(&mut b, 0);
    var(&mut b, sub);
    var(&mut b, payload.len() as u64);
    b.extend_from_slice(payload);
    b
}

pub fn step1(sv: &[u8]) -> Vec<u8> {
    sync(0, sv)
}
pub fn step2(update: &[u8]) -> Vec<u8> {
    sync(1, update)
}
pub fn update(update: &[u8]) -> Vec<u8> {
    sync(2, update)
}
