// Entry of the example page's msgpack bundle: socket.io-msgpack-parser as an ES module.
import parser from "socket.io-msgpack-parser";

export const { protocol, PacketType, Encoder, Decoder } = parser;
export default parser;
