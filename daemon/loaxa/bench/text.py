"""The default benchmark bulletin: a typical commune flood warning."""

BULLETIN = (
    "Thông báo khẩn của Ủy ban nhân dân xã về tình hình mưa lũ. "
    "Do ảnh hưởng của áp thấp nhiệt đới, từ đêm nay đến hết ngày mai trên địa bàn xã có mưa to đến rất to, "
    "lượng mưa phổ biến từ một trăm đến hai trăm mi li mét, có nơi trên ba trăm mi li mét. "
    "Nước sông dâng cao, nguy cơ ngập lụt tại các thôn ven sông và sạt lở đất ở khu vực đồi núi. "
    "Đề nghị bà con khẩn trương gia cố nhà cửa, chằng chống mái tôn, thu hoạch lúa và hoa màu đã chín. "
    "Các hộ gia đình sống ở vùng trũng thấp cần di chuyển người già, trẻ em và tài sản đến nơi an toàn, "
    "mang theo giấy tờ tùy thân, thuốc men, nước uống và lương thực đủ dùng trong ba ngày. "
    "Tuyệt đối không đi qua ngầm tràn, không vớt củi trên sông, không cho trẻ em tắm ở ao hồ. "
    "Khi cần hỗ trợ, bà con liên hệ ngay với trưởng thôn hoặc ban chỉ huy phòng chống thiên tai của xã. "
    "Xin trân trọng thông báo."
)
