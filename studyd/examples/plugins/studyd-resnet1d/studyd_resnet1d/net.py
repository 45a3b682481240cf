"""The network: a stem conv, residual blocks that halve the length, the head."""

from torch import nn


class Block(nn.Module):
    """x → conv → relu → [conv site] → conv, plus x (1×1 conv when the channels change)."""

    def __init__(self, c_in, c_out, kernel, dropout):
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
        self.dropout = dropout
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv1d(c_in, c_out, 1)
        self.pool = nn.MaxPool1d(2)

    def forward(self, x):
        h = self.conv2(self.dropout(self.conv1(x).relu()))
        return self.pool((h + self.skip(x)).relu())


class ResNet1d(nn.Module):
    def __init__(self, values, input_shape, num_classes, sites):
        super().__init__()
        channels, length = (1, input_shape[0]) if len(input_shape) == 1 else input_shape
        self.input_dropout = sites.dropout("input")
        blocks = []
        for i, width in enumerate(values.channels):
            blocks.append(Block(channels, width, values.kernel, sites.dropout("conv", layer=i)))
            channels, length = width, length // 2
        self.blocks = nn.Sequential(*blocks)
        self.dropout = sites.dropout("last_hidden")
        self.head = sites.linear(channels * length, num_classes, reads="last_hidden")

    def forward(self, x):
        x = x.view(x.shape[0], -1, x.shape[-1])  # (B, L) or (B, C, L)
        h = self.blocks(self.input_dropout(x)).flatten(1)
        return self.head(self.dropout(h))
