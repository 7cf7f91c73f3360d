//! Decoder for xdelta3's FGK secondary compressor (secondary id 16): the
//! adaptive Huffman coding of Faller, Gallager and Knuth (Knuth, "Dynamic
//! Huffman Coding", J. Algorithms 6, 1985), as xdelta3 arranges it.
//!
//! The code tree adapts after every symbol, so decoding must reproduce
//! xdelta3's tree updates exactly, tie-breaking included. A symbol seen
//! for the first time is sent as the path to the zero-weight leaf followed
//! by its index among the symbols not yet seen (most significant bit
//! first). Bytes are read least significant bit first. As with LZMA, one
//! tree per section kind lives for the whole patch, across windows.

/// Why an FGK section could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FgkError {
    EndOfInput,
    UnusedInput,
    Invalid,
}

impl std::fmt::Display for FgkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FgkError::EndOfInput => write!(f, "FGK stream ends early"),
            FgkError::UnusedInput => write!(f, "FGK section has bytes after its end"),
            FgkError::Invalid => write!(f, "FGK stream decodes to an impossible symbol"),
        }
    }
}

const ALPHABET_SIZE: usize = 256;
/// Leaves plus internal nodes: 2 * 256 - 1, plus one scratch slot that
/// stands for "no node", so a link can always be followed without a panic.
const NODE_SLOTS: usize = 512;
const NO_NODE: u16 = (NODE_SLOTS - 1) as u16;
/// xdelta3 reserves two blocks per node.
const BLOCK_SLOTS: usize = 1024;
const NO_BLOCK: u16 = (BLOCK_SLOTS - 1) as u16;

#[derive(Clone, Copy)]
struct Node {
    weight: u32,
    parent: u16,
    left_child: u16,
    right_child: u16,
    /// Neighbours in the sibling order of non-decreasing weight.
    left: u16,
    right: u16,
    /// The block of equal-weight nodes this node belongs to.
    block: u16,
}

const EMPTY_NODE: Node = Node {
    weight: 0,
    parent: NO_NODE,
    left_child: NO_NODE,
    right_child: NO_NODE,
    left: NO_NODE,
    right: NO_NODE,
    block: NO_BLOCK,
};

/// The adaptive tree for one section kind.
pub struct FgkDecoder {
    nodes: Box<[Node; NODE_SLOTS]>,
    /// For a block in use: its leader (highest node of that weight).
    block_leader: Box<[u16; BLOCK_SLOTS]>,
    /// For a free block: the next free block.
    block_next_free: Box<[u16; BLOCK_SLOTS]>,
    free_block: u16,
    root: u16,
    next_internal: u16,
    /// Head of the list of symbols not yet seen (linked by child fields).
    remaining_zeros: u16,
    zero_count: u32,
    zero_exponent: u32,
    zero_remainder: u32,
    /// Decoding state between bits.
    position: u16,
    index_bits: u32,
    index_bit_count: u32,
}

impl Default for FgkDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FgkDecoder {
    pub fn new() -> FgkDecoder {
        let mut nodes = Box::new([EMPTY_NODE; NODE_SLOTS]);
        for symbol in 0..ALPHABET_SIZE {
            let node = &mut nodes[symbol];
            node.right_child = if symbol + 1 < ALPHABET_SIZE {
                symbol as u16 + 1
            } else {
                NO_NODE
            };
            node.left_child = if symbol >= 1 {
                symbol as u16 - 1
            } else {
                NO_NODE
            };
        }
        let mut block_next_free = Box::new([NO_BLOCK; BLOCK_SLOTS]);
        // xdelta3 has 2 * 511 blocks, the last one ending the free list.
        for (block, next) in block_next_free.iter_mut().enumerate().take(2 * 511 - 1) {
            *next = block as u16 + 1;
        }
        let mut decoder = FgkDecoder {
            nodes,
            block_leader: Box::new([NO_NODE; BLOCK_SLOTS]),
            block_next_free,
            free_block: 0,
            root: 0,
            next_internal: ALPHABET_SIZE as u16,
            remaining_zeros: 0,
            zero_count: ALPHABET_SIZE as u32 + 2,
            zero_exponent: 0,
            zero_remainder: 0,
            position: 0,
            index_bits: 0,
            index_bit_count: 0,
        };
        decoder.count_one_less_zero();
        decoder.count_one_less_zero();
        decoder
    }

    #[inline]
    fn node(&self, index: u16) -> &Node {
        &self.nodes[usize::from(index) & (NODE_SLOTS - 1)]
    }

    #[inline]
    fn node_mut(&mut self, index: u16) -> &mut Node {
        &mut self.nodes[usize::from(index) & (NODE_SLOTS - 1)]
    }

    #[inline]
    fn leader(&self, block: u16) -> u16 {
        self.block_leader[usize::from(block) & (BLOCK_SLOTS - 1)]
    }

    #[inline]
    fn set_leader(&mut self, block: u16, leader: u16) {
        self.block_leader[usize::from(block) & (BLOCK_SLOTS - 1)] = leader;
    }

    #[inline]
    fn make_block(&mut self, leader: u16) -> u16 {
        let block = self.free_block;
        self.free_block = self.block_next_free[usize::from(block) & (BLOCK_SLOTS - 1)];
        self.set_leader(block, leader);
        block
    }

    #[inline]
    fn release_block(&mut self, block: u16) {
        self.block_next_free[usize::from(block) & (BLOCK_SLOTS - 1)] = self.free_block;
        self.free_block = block;
    }

    /// One fewer unseen symbol: keep count = 2^exponent + remainder.
    fn count_one_less_zero(&mut self) {
        self.zero_count = self.zero_count.saturating_sub(1);
        self.zero_exponent = 0;
        let mut rest = self.zero_count;
        while rest > 1 {
            self.zero_exponent += 1;
            rest >>= 1;
        }
        self.zero_remainder = self.zero_count - (1 << self.zero_exponent);
    }

    fn index_bits_needed(&self) -> u32 {
        if self.zero_remainder == 0 {
            self.zero_exponent
        } else {
            self.zero_exponent + 1
        }
    }

    /// Takes one bit; true when a whole symbol has been received.
    #[inline]
    fn take_bit(&mut self, bit: bool) -> bool {
        if self.node(self.position).weight == 0 {
            self.index_bits = (self.index_bits << 1) | u32::from(bit);
            self.index_bit_count += 1;
            return self.index_bit_count >= self.index_bits_needed();
        }
        let here = *self.node(self.position);
        self.position = if bit {
            here.right_child
        } else {
            here.left_child
        };
        let reached = *self.node(self.position);
        if reached.left_child == NO_NODE {
            return reached.weight != 0 || self.zero_count == 1;
        }
        false
    }

    /// The symbol just received; updates the tree for the next one.
    #[inline]
    fn finish_symbol(&mut self) -> Result<u8, FgkError> {
        let mut symbol = self.position;
        if self.node(symbol).weight == 0 {
            let mut skip = self.index_bits;
            symbol = self.remaining_zeros;
            while skip != 0 && self.node(symbol).right_child != NO_NODE {
                symbol = self.node(symbol).right_child;
                skip -= 1;
            }
        }
        self.index_bits = 0;
        self.index_bit_count = 0;
        let byte = u8::try_from(symbol).map_err(|_| FgkError::Invalid)?;
        self.update_tree(symbol);
        self.position = self.root;
        Ok(byte)
    }

    #[inline]
    fn update_tree(&mut self, symbol: u16) {
        let mut node = if self.node(symbol).weight == 0 {
            self.first_sighting(symbol)
        } else {
            symbol
        };
        // Bounded by the tree height; the guard only stops a broken tree.
        let mut steps = 0;
        while node != self.root && steps < NODE_SLOTS {
            self.move_to_block_leader(node);
            self.promote(node);
            self.node_mut(node).weight += 1;
            node = self.node(node).parent;
            steps += 1;
        }
        let root = self.root;
        self.node_mut(root).weight += 1;
    }

    /// Swaps `node` with the leader of its block (subtrees go along).
    #[inline]
    fn move_to_block_leader(&mut self, node: u16) {
        let leader = self.leader(self.node(node).block);
        if node == leader || self.node(node).parent == leader || self.node(node).weight == 0 {
            return;
        }
        let leader_right = self.node(leader).right;
        self.node_mut(leader_right).left = node;
        let node_left = self.node(node).left;
        if node_left != NO_NODE {
            self.node_mut(node_left).right = leader;
        }

        let old_node_right = self.node(node).right;
        self.node_mut(node).right = self.node(leader).right;
        if old_node_right == leader {
            self.node_mut(leader).right = node;
        } else {
            self.node_mut(old_node_right).left = leader;
            self.node_mut(leader).right = old_node_right;
        }

        let old_leader_left = self.node(leader).left;
        self.node_mut(leader).left = self.node(node).left;
        if old_leader_left == node {
            self.node_mut(node).left = leader;
        } else {
            self.node_mut(old_leader_left).right = node;
            self.node_mut(node).left = old_leader_left;
        }

        let node_parent = self.node(node).parent;
        let leader_parent = self.node(leader).parent;
        let node_is_right = self.node(node_parent).right_child == node;
        let leader_is_right = self.node(leader_parent).right_child == leader;
        self.node_mut(node).parent = leader_parent;
        self.node_mut(leader).parent = node_parent;
        self.set_child(node_parent, node_is_right, leader);
        self.set_child(leader_parent, leader_is_right, node);

        let block = self.node(node).block;
        self.set_leader(block, node);
    }

    #[inline]
    fn set_child(&mut self, parent: u16, right: bool, child: u16) {
        let parent = self.node_mut(parent);
        if right {
            parent.right_child = child;
        } else {
            parent.left_child = child;
        }
    }

    /// Moves `node`, the leader of its block, into the block of the next
    /// weight it is about to reach.
    #[inline]
    fn promote(&mut self, node: u16) {
        let current = *self.node(node);
        let (my_left, my_right, block) = (current.left, current.right, current.block);
        if current.weight == 0 {
            return;
        }
        let joins_right_block =
            current.weight == self.node(my_right).weight.wrapping_sub(1) && my_right != self.root;

        // The parent of the zero leaf, whose right child is its left neighbour.
        if my_left == current.right_child
            && current.left_child != NO_NODE
            && self.node(current.left_child).weight == 0
        {
            if joins_right_block {
                self.release_block(block);
                let right_block = self.node(my_right).block;
                self.node_mut(node).block = right_block;
                self.node_mut(my_left).block = right_block;
            }
            return;
        }
        if my_left == self.remaining_zeros {
            return;
        }
        if self.node(my_left).block == block {
            self.set_leader(block, my_left);
        } else {
            self.release_block(block);
        }
        let new_block = if joins_right_block {
            self.node(my_right).block
        } else {
            self.make_block(node)
        };
        self.node_mut(node).block = new_block;
    }

    /// Gives a first-seen symbol its own leaf beside the zero leaf.
    fn first_sighting(&mut self, symbol: u16) -> u16 {
        if self.zero_count == 1 {
            // The last unseen symbol becomes an ordinary leaf in place.
            self.node_mut(symbol).right_child = NO_NODE;
            let right = self.node(symbol).right;
            let block = if self.node(right).weight == 1 {
                self.node(right).block
            } else {
                self.make_block(symbol)
            };
            self.node_mut(symbol).block = block;
            self.remaining_zeros = NO_NODE;
            return symbol;
        }

        let zero = self.remaining_zeros;
        let internal = self.next_internal;
        self.next_internal = self.next_internal.saturating_add(1).min(NO_NODE);
        let zero_node = *self.node(zero);
        {
            let new = self.node_mut(internal);
            new.parent = zero_node.parent;
            new.right = zero_node.right;
            new.weight = 0;
            new.right_child = symbol;
            new.left = symbol;
        }
        if zero == self.root {
            self.root = internal;
            let symbol_block = self.make_block(symbol);
            self.node_mut(symbol).block = symbol_block;
            let internal_block = self.make_block(internal);
            self.node_mut(internal).block = internal_block;
        } else {
            let right = self.node(internal).right;
            self.node_mut(right).left = internal;
            let zero_is_right = self.node(zero_node.parent).right_child == zero;
            self.set_child(zero_node.parent, zero_is_right, internal);
            let block = if self.node(right).weight == 1 {
                self.node(right).block
            } else {
                self.make_block(internal)
            };
            self.node_mut(internal).block = block;
            self.node_mut(symbol).block = block;
        }

        self.unlink_zero(symbol);

        let zeros = self.remaining_zeros;
        self.node_mut(internal).left_child = zeros;
        {
            let leaf = self.node_mut(symbol);
            leaf.right = internal;
            leaf.left = zeros;
            leaf.parent = internal;
            leaf.left_child = NO_NODE;
            leaf.right_child = NO_NODE;
        }
        let zeros_node = self.node_mut(zeros);
        zeros_node.parent = internal;
        zeros_node.right = symbol;
        symbol
    }

    /// Removes a symbol from the list of unseen ones.
    fn unlink_zero(&mut self, symbol: u16) {
        if self.zero_count == 1 {
            return;
        }
        self.count_one_less_zero();
        let links = *self.node(symbol);
        if links.left_child == NO_NODE {
            let next = self.node(self.remaining_zeros).right_child;
            self.remaining_zeros = next;
            self.node_mut(next).left_child = NO_NODE;
        } else if links.right_child == NO_NODE {
            self.node_mut(links.left_child).right_child = NO_NODE;
        } else {
            self.node_mut(links.right_child).left_child = links.left_child;
            self.node_mut(links.left_child).right_child = links.right_child;
        }
    }

    /// Decodes the next window's section into exactly `output_len` bytes,
    /// using up all of `input` (bits after the last symbol are ignored).
    pub fn decode(&mut self, input: &[u8], output_len: usize) -> Result<Vec<u8>, FgkError> {
        let mut output = Vec::with_capacity(output_len);
        if output_len == 0 {
            return Err(FgkError::Invalid);
        }
        for (consumed, &byte) in input.iter().enumerate() {
            for shift in 0..8 {
                if self.take_bit(byte >> shift & 1 == 1) {
                    output.push(self.finish_symbol()?);
                    if output.len() == output_len {
                        return if consumed + 1 == input.len() {
                            Ok(output)
                        } else {
                            Err(FgkError::UnusedInput)
                        };
                    }
                }
            }
        }
        Err(FgkError::EndOfInput)
    }

    /// The bits that code `symbol` in the current tree, in sending order;
    /// updates the tree as the decoder will. Only the tests encode.
    #[cfg(test)]
    fn encode_symbol(&mut self, symbol: u8, bits: &mut Vec<bool>) {
        let mut reversed = Vec::new();
        let mut target = u16::from(symbol);
        if self.node(target).weight == 0 {
            let mut index = 0u32;
            let mut at = self.remaining_zeros;
            while at != target {
                at = self.node(at).right_child;
                index += 1;
            }
            for bit in 0..self.index_bits_needed() {
                reversed.push(index >> bit & 1 == 1);
            }
            target = self.remaining_zeros;
        }
        while target != self.root {
            let parent = self.node(target).parent;
            reversed.push(self.node(parent).right_child == target);
            target = parent;
        }
        self.update_tree(u16::from(symbol));
        bits.extend(reversed.iter().rev());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(encoder: &mut FgkDecoder, data: &[u8]) -> Vec<u8> {
        let mut bits = Vec::new();
        for &byte in data {
            encoder.encode_symbol(byte, &mut bits);
        }
        let mut bytes = vec![0u8; bits.len().div_ceil(8)];
        for (index, bit) in bits.iter().enumerate() {
            if *bit {
                bytes[index / 8] |= 1 << (index % 8);
            }
        }
        bytes
    }

    #[test]
    fn first_symbol_is_its_index_in_eight_bits() {
        let mut decoder = FgkDecoder::new();
        // 'A' = 65 = 0b01000001, sent most significant bit first, bytes read
        // low bit first: bits 0,1,0,0,0,0,0,1 -> byte 0b1000_0010.
        assert_eq!(decoder.decode(&[0b1000_0010], 1), Ok(b"A".to_vec()));
    }

    #[test]
    fn round_trips_through_the_test_encoder_across_windows() {
        let first = b"abracadabra, abracadabra! the tree adapts as it goes".to_vec();
        let second: Vec<u8> = (0..=255u8).chain(0..=255u8).rev().collect();
        let mut encoder = FgkDecoder::new();
        let first_bytes = encode(&mut encoder, &first);
        let second_bytes = encode(&mut encoder, &second);
        let mut decoder = FgkDecoder::new();
        assert_eq!(decoder.decode(&first_bytes, first.len()), Ok(first.clone()));
        assert_eq!(decoder.decode(&second_bytes, second.len()), Ok(second));
        let mut decoder = FgkDecoder::new();
        assert_eq!(
            decoder.decode(&first_bytes[..first_bytes.len() - 1], first.len()),
            Err(FgkError::EndOfInput)
        );
        let mut decoder = FgkDecoder::new();
        let mut longer = first_bytes.clone();
        longer.push(0);
        assert_eq!(
            decoder.decode(&longer, first.len()),
            Err(FgkError::UnusedInput)
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        #[test]
        fn arbitrary_bytes_never_panic(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            len in 0usize..2048,
        ) {
            let mut decoder = FgkDecoder::new();
            let _ = decoder.decode(&input, len);
            let _ = decoder.decode(&input, len);
        }

        #[test]
        fn encode_decode_round_trip(
            chunks in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 1..600), 1..4),
        ) {
            let mut encoder = FgkDecoder::new();
            let mut decoder = FgkDecoder::new();
            for chunk in chunks {
                let bytes = encode(&mut encoder, &chunk);
                proptest::prop_assert_eq!(decoder.decode(&bytes, chunk.len()), Ok(chunk));
            }
        }
    }
}
